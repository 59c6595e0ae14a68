/**
 * Two server processes behind one origin, sharing one redis-server: express-session with
 * connect-redis, first bindings through a Redis AtomicStore (SET NX EX GET), redisReplayStore and
 * one nonce key. The whole flow runs across them (login on one, handshake on the other, nonce and
 * replay ids good at both, logout and login), and concurrent first handshakes of one session on
 * the two processes end with exactly one bound key. Also: the Redis AtomicStore's contract.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeys, openResponse, requestHeader } from '../../client/crypto.js';
import { createDpopProof, getDpopKey, rotateDpopKey } from '../../client/dpop.js';
import { defined, signedHandshake } from '../support/helpers.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { redisStore } from '../../src/server/redis-store.js';
import { sessionStateKey } from '../../src/server/session/state.js';

const ORIGIN = 'https://app.example'; // what the browser addresses; the load balancer's two upstreams both say so
const env = { NONCE_KEY: randomBytes(32).toString('base64url'), ORIGIN, TOKEN_KEY: randomBytes(32).toString('base64url') };
let redis: RedisServer;
const children: ChildProcess[] = [];
let processes: [string, string];

async function appProcess(): Promise<string> {
  const child = spawn(process.execPath, [new URL('./fixtures/shared-session-server.mjs', import.meta.url).pathname], {
    env: { ...process.env, ...env, REDIS_URL: redis.url },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const [line] = (await once(defined(child.stdout, 'stdout'), 'data')) as [Buffer];
  return `http://127.0.0.1:${line.toString().trim()}`;
}

beforeAll(async () => {
  redis = await startRedis();
  processes = (await Promise.all([appProcess(), appProcess()])) as [string, string];
});
afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
  await redis?.stop();
});

/** A browser: one cookie jar, one CSRF token, the last DPoP nonce it was given. */
class Browser {
  cookie = '';
  csrfToken = '';
  nonce: string | undefined;

  async send(at: string, path: string, init: { method?: string; headers?: Record<string, string> } = {}) {
    const response = await fetch(`${at}${path}`, {
      method: init.method ?? 'POST',
      headers: { ...init.headers, ...(this.cookie ? { cookie: this.cookie } : {}), 'x-csrf-token': this.csrfToken },
    });
    const set = response.headers.getSetCookie()[0];
    if (set) this.cookie = set.split(';', 1)[0] ?? '';
    this.nonce = response.headers.get('dpop-nonce') ?? this.nonce;
    const body = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    return { status: response.status, code: response.headers.get('tokensec-error'), body, response };
  }

  async login(at: string) {
    this.csrfToken = String((await this.send(at, '/csrf', { method: 'GET' })).body?.csrfToken);
    expect((await this.send(at, '/login')).status).toBe(200);
  }

  /** A handshake as the client makes it: with the current nonce, retried once on use_dpop_nonce. */
  async handshake(at: string, options: { tsb?: boolean; retry?: boolean } = {}) {
    const go = async () => {
      const { headers } = await signedHandshake(`${ORIGIN}/token`, this.csrfToken, { tsb: options.tsb, nonce: this.nonce });
      return this.send(at, '/token', { headers });
    };
    const first = await go();
    return first.code === 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED' && options.retry !== false ? go() : first;
  }
}

/** A handshake made and opened as the client does it (key agreement, proof with tsh and tsb, the sealed answer opened): the token. */
async function openedHandshake(browser: Browser, at: string, key: Awaited<ReturnType<typeof getDpopKey>>): Promise<string> {
  const keys = await createKeys(crypto.subtle);
  const target = {
    header: 'x-tokensec-handshake',
    method: 'POST',
    path: '/token',
    jkt: new Uint8Array(Buffer.from(key.thumbprint, 'base64url')),
  };
  const value = await requestHeader(crypto.subtle, keys, browser.csrfToken, target);
  const claims = { tsh: createHash('sha256').update(value).digest('base64url'), tsb: true } as unknown as Record<string, string>;
  const proof = await createDpopProof({ method: 'POST', url: `${ORIGIN}/token`, key, claims, nonce: browser.nonce });
  const answer = await browser.send(at, '/token', { headers: { 'x-tokensec-handshake': value, dpop: proof } });
  expect(answer.status).toBe(200);
  return openResponse(
    crypto.subtle,
    keys,
    browser.csrfToken,
    target,
    defined(answer.response.headers.get('x-tokensec-handshake'), 'answer'),
  );
}

describe('two processes sharing Redis run the whole flow', () => {
  it('login at A, handshake at B (nonce from A), API at A and B, a replay refused, another key refused, logout/login rebinds', async () => {
    const [a, b] = processes;
    const browser = new Browser();
    await browser.login(a);
    // No nonce yet: B asks for one; the nonce B hands out is good at A and the other way round (one key).
    const first = await browser.handshake(b, { retry: false });
    expect([first.status, first.code]).toEqual([401, 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
    // The first handshake, at A, binds the key the client made fresh (tsb) and carries the token, which the client opens.
    const key = await getDpopKey();
    const token = await openedHandshake(browser, a, key);
    // B sees the binding: the same key, not fresh any more, gets a token there too.
    expect((await browser.handshake(b, { tsb: false })).status).toBe(200);

    const apiProof = await createDpopProof({ method: 'GET', url: `${ORIGIN}/api/me`, key, accessToken: token, nonce: browser.nonce });
    const call = (at: string) =>
      browser.send(at, '/api/me', { method: 'GET', headers: { authorization: `DPoP ${token}`, dpop: apiProof } });
    const atA = await call(a);
    expect([atA.status, atA.body?.sub, atA.body?.jkt]).toEqual([200, 'alice', key.thumbprint]);
    const replayed = await call(b);
    expect([replayed.status, replayed.code]).toEqual([401, 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF']);

    // Another key on this session, at either process: refused.
    await rotateDpopKey();
    const other = await browser.handshake(b);
    expect([other.status, other.code]).toEqual([403, 'ERR_TOKENSEC_DPOP_KEY_MISMATCH']);

    // Logout at B (unbinds in Redis and in the session), login at A, the fresh key binds at B.
    expect((await browser.send(b, '/logout')).status).toBe(200);
    await browser.login(a);
    const rebound = await browser.handshake(b);
    expect(rebound.status).toBe(200);
  });

  it('concurrent first handshakes of one session at A and at B with two keys: exactly one key is bound', async () => {
    const [a, b] = processes;
    for (let round = 0; round < 5; round++) {
      const browser = new Browser();
      await browser.login(a);
      expect((await browser.handshake(a, { retry: false })).status).toBe(401); // learn a nonce without binding
      const one = await signedHandshake(`${ORIGIN}/token`, browser.csrfToken, { nonce: browser.nonce });
      await rotateDpopKey();
      const two = await signedHandshake(`${ORIGIN}/token`, browser.csrfToken, { nonce: browser.nonce });
      const answers = await Promise.all([
        browser.send(a, '/token', { headers: one.headers }),
        browser.send(b, '/token', { headers: two.headers }),
      ]);
      expect(answers.map((r) => r.status).sort()).toEqual([200, 403]);
      const winner = answers[0]?.status === 200 ? one : two;
      // Both processes agree on the winner: its key goes on working at both, the loser's at neither.
      for (const at of processes) {
        const check = await signedHandshake(`${ORIGIN}/token`, browser.csrfToken, { nonce: browser.nonce, tsb: false });
        const current = (await getDpopKey()).thumbprint;
        expect((await browser.send(at, '/token', { headers: check.headers })).status).toBe(current === winner.jkt ? 200 : 403);
      }
    }
  });
});

describe('bindings in Redis live as long as their connect-redis session', () => {
  /** The Redis key of this browser's session binding (redisStore's prefix + sessionStateKey of the session id in its cookie). */
  const bindingKey = (browser: Browser) => {
    const signed = decodeURIComponent(browser.cookie.slice(browser.cookie.indexOf('=') + 1)); // s:<id>.<signature>
    return `tokensec:${sessionStateKey('bind', signed.slice(2, signed.lastIndexOf('.')))}`;
  };

  it('bound at A with the session store’s TTL; a login that regenerates at B deletes it; a logout that regenerates at A deletes the next', async () => {
    const [a, b] = processes;
    const client = await createClient({ url: redis.url }).connect();
    try {
      const browser = new Browser();
      await browser.login(a);
      expect((await browser.handshake(a)).status).toBe(200);
      const first = bindingKey(browser);
      expect(await client.exists(first)).toBe(1);
      // No cookie expiry: connect-redis keeps the session for its ttl (one day), and the binding as long.
      expect(await client.ttl(first)).toBeGreaterThan(86_400 - 60);

      const relogin = await browser.send(b, '/login-regenerate');
      expect(relogin.status).toBe(200);
      browser.csrfToken = String(relogin.body?.csrfToken);
      expect(await client.exists(first)).toBe(0);
      await rotateDpopKey();
      expect((await browser.handshake(b)).status).toBe(200);
      const second = bindingKey(browser);
      expect(second).not.toBe(first);
      expect(await client.exists(second)).toBe(1);

      const logout = await browser.send(a, '/logout-regenerate');
      expect(logout.status).toBe(200);
      expect(await client.exists(second)).toBe(0);
    } finally {
      await client.quit();
    }
  });
});

describe('redisStore() (SET key value NX EX ttl GET) against a real redis-server', () => {
  it('sets once, reads the value back after, expires with its TTL, deletes', async () => {
    const client = await createClient({ url: redis.url }).connect();
    try {
      const store = redisStore({ client, prefix: '' });
      expect(await store.addIfAbsent('k', 'first', 60)).toBeUndefined();
      expect(await store.addIfAbsent('k', 'second', 60)).toBe('first');
      expect(await client.ttl('k')).toBeGreaterThan(50);
      await store.delete('k');
      expect(await store.addIfAbsent('k', 'third', 1)).toBeUndefined();
      expect(await client.pTTL('k')).toBeLessThanOrEqual(1000);
    } finally {
      await client.quit();
    }
  });
});
