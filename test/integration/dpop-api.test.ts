/**
 * tokenSec.dpop() on a listening Express app: proofs made by oauth4webapi and the dpop package
 * pass; a copied token, a Bearer token, a replayed proof and a token bound to another key are
 * refused with RFC 9449's WWW-Authenticate; a Redis replay store shared by two server processes
 * refuses on one a proof used on the other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as dpopPackage from 'dpop';
import express from 'express';
import { SignJWT, calculateJwkThumbprint, exportJWK, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec, { TokenSecError } from '../../src/index.js';
import { listen } from '../support/helpers.js';
import { currentNonce } from '../support/proofs.js';
import { nonceSource } from '../../src/server/dpop/nonce.js';
import { markStoreInUse, startRedis, type RedisServer } from '../support/redis.js';

const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the test!');
const mint = (jkt: string | undefined, sub = 'alice') =>
  new SignJWT({ sub, ...(jkt ? { cnf: { jkt } } : {}) }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey);
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;

let server: Awaited<ReturnType<typeof listen>>;
const errors: TokenSecError[] = [];

beforeAll(async () => {
  const app = express();
  app.get('/api/me', tokenSec.dpop({ verifyToken }), (req, res) => {
    res.json({ sub: (req as express.Request & { tokenSec?: { claims: { sub?: unknown } } }).tokenSec?.claims.sub });
  });
  app.get('/api/nonce', tokenSec.dpop({ verifyToken, nonce: true }), (_req, res) => res.json({ ok: true }));
  // Express's default error handler sends err.headers (WWW-Authenticate) and the status.
  app.use((err: TokenSecError, _req: express.Request, _res: express.Response, next: express.NextFunction) => {
    errors.push(err);
    next(err);
  });
  server = await listen(app);
});
afterAll(() => server.close());

async function dpopKey() {
  const keyPair = await dpopPackage.generateKeyPair('ES256');
  return { keyPair, jkt: await dpopPackage.calculateThumbprint(keyPair.publicKey) };
}

const call = (token: string, proof?: string, path = '/api/me') =>
  fetch(`${server.origin}${path}`, { headers: { authorization: `DPoP ${token}`, ...(proof ? { dpop: proof } : {}) } });

const SHARED_NONCE_KEY = 'the nonce key both processes share, 32+ bytes';

describe('accepted', () => {
  it('a DPoP-bound token with a proof from oauth4webapi (after its use_dpop_nonce retry)', async () => {
    const keyPair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    const handle = oauth.DPoP({}, keyPair);
    const token = await mint(jkt);
    const request = () =>
      oauth.protectedResourceRequest(token, 'GET', new URL(`${server.origin}/api/me`), undefined, undefined, {
        DPoP: handle,
        [oauth.allowInsecureRequests]: true,
      });
    const response = await request().catch((error: unknown) => {
      if (!oauth.isDPoPNonceError(error)) throw error;
      return request();
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ sub: 'alice' });
  });

  it('a proof from the dpop package; with server nonces, the use_dpop_nonce round trip', async () => {
    const { keyPair, jkt } = await dpopKey();
    const token = await mint(jkt);
    const url = `${server.origin}/api/me`;
    expect((await call(token, await dpopPackage.generateProof(keyPair, url, 'GET', currentNonce(), token))).status).toBe(200);
    const first = await call(
      token,
      await dpopPackage.generateProof(keyPair, `${server.origin}/api/nonce`, 'GET', undefined, token),
      '/api/nonce',
    );
    expect(first.status).toBe(401);
    expect(first.headers.get('www-authenticate')).toMatch(/^DPoP error="use_dpop_nonce"/);
    const nonce = first.headers.get('dpop-nonce') ?? '';
    expect(nonce).not.toBe('');
    const second = await call(
      token,
      await dpopPackage.generateProof(keyPair, `${server.origin}/api/nonce`, 'GET', nonce, token),
      '/api/nonce',
    );
    expect(second.status).toBe(200);
    expect(second.headers.get('dpop-nonce')).toBeTruthy();
  });
});

describe('refused with 401 and WWW-Authenticate', () => {
  it('a token copied from a log, used as a Bearer', async () => {
    const { jkt } = await dpopKey();
    const response = await fetch(`${server.origin}/api/me`, { headers: { authorization: `Bearer ${await mint(jkt)}` } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token".*algs="ES256"$/);
    expect(errors.at(-1)?.code).toBe('ERR_TOKENSEC_DPOP_INVALID_TOKEN');
  });

  it('a token copied from a log, used with a proof from the thief own key', async () => {
    const victim = await dpopKey();
    const thief = await dpopKey();
    const token = await mint(victim.jkt);
    const response = await call(
      token,
      await dpopPackage.generateProof(thief.keyPair, `${server.origin}/api/me`, 'GET', currentNonce(), token),
    );
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);
  });

  it('no credentials at all: a challenge without an error attribute (RFC 6750 §3.1)', async () => {
    const response = await fetch(`${server.origin}/api/me`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('DPoP algs="ES256"');
  });

  it('a replayed proof, and a proof without one', async () => {
    const { keyPair, jkt } = await dpopKey();
    const token = await mint(jkt);
    const proof = await dpopPackage.generateProof(keyPair, `${server.origin}/api/me`, 'GET', currentNonce(), token);
    expect((await call(token, proof)).status).toBe(200);
    const replay = await call(token, proof);
    expect(replay.status).toBe(401);
    expect(replay.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
    expect(errors.at(-1)?.code).toBe('ERR_TOKENSEC_DPOP_REPLAYED_PROOF');
    expect((await call(token)).status).toBe(401);
    expect(errors.at(-1)?.code).toBe('ERR_TOKENSEC_DPOP_MISSING_PROOF');
  });

  it('a token whose verification fails, and one without cnf.jkt', async () => {
    const { keyPair, jkt } = await dpopKey();
    for (const token of [`${await mint(jkt)}x`, await mint(undefined)]) {
      const response = await call(token, await dpopPackage.generateProof(keyPair, `${server.origin}/api/me`, 'GET', currentNonce(), token));
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);
    }
  });

  it('requests without a valid token bound to the key never write to the replay store (no filling it with self-made proofs)', async () => {
    const keys: string[] = [];
    const app = express();
    app.get('/api/me', tokenSec.dpop({ verifyToken, replayStore: { add: (key) => (keys.push(key), true) } }), (_req, res) => res.json({}));
    const counted = await listen(app);
    try {
      const url = `${counted.origin}/api/me`;
      const { keyPair, jkt } = await dpopKey();
      const other = await dpopKey();
      const forged = `${await mint(jkt)}x`;
      const boundElsewhere = await mint(other.jkt);
      for (const token of [forged, boundElsewhere]) {
        const response = await fetch(url, {
          headers: { authorization: `DPoP ${token}`, dpop: await dpopPackage.generateProof(keyPair, url, 'GET', currentNonce(), token) },
        });
        expect(response.status).toBe(401);
      }
      expect(keys).toEqual([]);
      const token = await mint(jkt);
      const ok = await fetch(url, {
        headers: { authorization: `DPoP ${token}`, dpop: await dpopPackage.generateProof(keyPair, url, 'GET', currentNonce(), token) },
      });
      expect(ok.status).toBe(200);
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatch(new RegExp(`^${jkt}:`));
    } finally {
      await counted.close();
    }
  });

  it('two DPoP headers', async () => {
    const { keyPair, jkt } = await dpopKey();
    const token = await mint(jkt);
    const proof = await dpopPackage.generateProof(keyPair, `${server.origin}/api/me`, 'GET', currentNonce(), token);
    // A raw request: fetch would join the two fields into one.
    const net = await import('node:net');
    const { port } = new URL(server.origin);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => {
        socket.end(
          `GET /api/me HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: DPoP ${token}\r\nDPoP: ${proof}\r\nDPoP: ${proof}\r\nConnection: close\r\n\r\n`,
        );
      });
      let data = '';
      socket.on('data', (chunk) => (data += chunk));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    const status = Number(raw.split(' ')[1]);
    expect(status).toBe(401);
    expect(errors.at(-1)?.message).toMatch(/more than one DPoP header/);
  });
});

describe('options are checked at startup', () => {
  it.each([
    [{}, /"verifyToken" is required/],
    [{ verifyToken, algorithms: ['RS256'] }, /"algorithms" must be a non-empty array/],
    [{ verifyToken, maxAge: 0 }, /"maxAge" must be a whole number of seconds/],
    [{ verifyToken, replayStore: {} }, /"replayStore" must be a store with addIfAbsent/],
    [{ verifyToken, verifytoken: 1 }, /unknown option "verifytoken"\. Did you mean "verifyToken"\?/],
  ])('%o', (options, message) => {
    expect(() => tokenSec.dpop(options as never)).toThrow(message);
  });
});

describe('a Redis replay store shared by two server processes', () => {
  let redis: RedisServer;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    await markStoreInUse(redis); // a Redis in use, not a new one (store-restart.test.ts plays that)
    await markStoreInUse(redis); // a Redis in use, not a new one (store-restart.test.ts plays that)
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
    await redis?.stop();
  });

  async function apiProcess(): Promise<string> {
    const child = spawn(process.execPath, [new URL('./fixtures/dpop-api-server.mjs', import.meta.url).pathname], {
      // Both processes make nonces with one key, as production requires.
      env: { ...process.env, REDIS_URL: redis.url, TOKENSEC_NONCE_KEY: SHARED_NONCE_KEY },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    return `http://127.0.0.1:${line.toString().trim()}`;
  }

  it('redisReplayStore: add is true once per key, against a real redis-server', async () => {
    const client = await createClient({ url: redis.url }).connect();
    try {
      const store = tokenSec.redisReplayStore({ client });
      expect([
        await store.addIfAbsent('k', '1', 60),
        await store.addIfAbsent('k', '2', 60),
        await store.addIfAbsent('other', '3', 60),
      ]).toEqual([undefined, '1', undefined]);
    } finally {
      await client.quit();
    }
  });

  it('a proof used on one process is refused on the other', async () => {
    const [first, second] = await Promise.all([apiProcess(), apiProcess()]);
    const { keyPair, jkt } = await dpopKey();
    const token = Buffer.from(JSON.stringify({ cnf: { jkt } })).toString('base64url');
    const proof = await dpopPackage.generateProof(
      keyPair,
      'https://api.example/api/me',
      'GET',
      nonceSource({ key: SHARED_NONCE_KEY }).current(),
      token,
    );
    const send = (origin: string) => fetch(`${origin}/api/me`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    const accepted = await send(first);
    expect(accepted.status).toBe(200);
    const refused = await send(second);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' });
    // A fresh proof works on the second process: it was the replay, not the process, that was refused.
    const fresh = await dpopPackage.generateProof(
      keyPair,
      'https://api.example/api/me',
      'GET',
      nonceSource({ key: SHARED_NONCE_KEY }).current(),
      token,
    );
    expect((await fetch(`${second}/api/me`, { headers: { authorization: `DPoP ${token}`, dpop: fresh } })).status).toBe(200);
  });
});
