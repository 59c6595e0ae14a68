/**
 * Attacks on the replay store, against a real app on 127.0.0.1 (express-session, a handshake
 * that hands tokens to logged-in users only, API routes behind dpop(), one memoryStore() shared
 * by both, `max` set small so that the store's limits are reached within the test):
 * (a) a logged-in client flooding the API with its one key and session gets 429
 *     ERR_TOKENSEC_DPOP_RATE_LIMITED, while another client's valid proofs pass;
 * (b) a visitor who opens a new session and a new key for every handshake, at full speed, is
 *     refused once new keys have taken their part of the store, and never causes a logged-in
 *     user's valid proof (handshake or API) to be refused.
 * On 3.0.0 the first flood refused every client ("replayed") and the second refused the user.
 */
import { randomBytes } from 'node:crypto';
import express from 'express';
import session from 'express-session';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeys, openResponse, requestHeader } from '../../client/crypto.js';
import tokenSec from '../../src/index.js';
import { listen } from '../support/helpers.js';
import { joseProof, proofKey, sha256, type ProofKey } from '../support/proofs.js';

declare module 'express-session' {
  interface SessionData {
    secret?: string;
    userId: string;
  }
}

const MAX = 200;
const PER_OWNER = 40;
let server: Awaited<ReturnType<typeof listen>>;

beforeAll(async () => {
  const store = tokenSec.memoryStore({ max: MAX, maxPerOwner: PER_OWNER });
  const app = express();
  app.use(session({ secret: 'session secret for the flood tests', resave: false, saveUninitialized: false }));
  // A page visit: a session with its handshake secret (as a CSRF middleware would make it).
  app.get('/', (req, res) => {
    req.session.secret ??= randomBytes(24).toString('base64url');
    res.json({ secret: req.session.secret });
  });
  app.post('/login', (req, res) => {
    req.session.userId = `user-${randomBytes(4).toString('hex')}`;
    res.json({ ok: true });
  });
  app.post(
    '/token',
    tokenSec.handshake({
      terminate: true,
      secret: (req) => req.session.secret,
      dpop: { replayStore: store },
      payload: (req, _res, { jkt }) => {
        if (!req.session.userId) throw Object.assign(new Error('not logged in'), { status: 401 });
        return Buffer.from(JSON.stringify({ sub: req.session.userId, cnf: { jkt } })).toString('base64url');
      },
    }),
  );
  app.get(
    '/api/me',
    tokenSec.dpop({ replayStore: store, verifyToken: (token) => JSON.parse(Buffer.from(token, 'base64url').toString()) }),
    (req, res) => res.json({ sub: req.tokenSec?.claims.sub }),
  );
  app.use(tokenSec.errorHandler());
  server = await listen(app);
});
afterAll(() => server.close());

const answer = async (response: Response) => ({
  status: response.status,
  code: response.ok ? undefined : ((await response.json()) as { code?: string }).code,
});

/** A browser: its cookie jar (one session), its DPoP key, and the token its handshake got. */
class Client {
  cookie = '';
  secret = '';
  token = '';
  constructor(readonly key: ProofKey) {}

  static async open(): Promise<Client> {
    const client = new Client(await proofKey());
    const response = await fetch(`${server.origin}/`);
    client.cookie = response.headers.getSetCookie()[0]!.split(';', 1)[0]!;
    client.secret = ((await response.json()) as { secret: string }).secret;
    return client;
  }

  async login(): Promise<void> {
    await fetch(`${server.origin}/login`, { method: 'POST', headers: { cookie: this.cookie } });
  }

  async handshake(): Promise<{ status: number; code?: string | undefined }> {
    const url = `${server.origin}/token`;
    const jkt = await calculateJwkThumbprint(this.key.jwk);
    const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/token', jkt: new Uint8Array(Buffer.from(jkt, 'base64url')) };
    const keys = await createKeys(crypto.subtle);
    const value = await requestHeader(crypto.subtle, keys, this.secret, target);
    // Its key is its own, made for this session: it claims tsb, as the browser client does for a key it made.
    const proof = await joseProof(this.key, { htm: 'POST', htu: url, tsh: await sha256(value), tsb: true });
    const response = await fetch(url, { method: 'POST', headers: { cookie: this.cookie, 'x-tokensec-handshake': value, dpop: proof } });
    const sealed = response.headers.get('x-tokensec-handshake');
    if (sealed) this.token = await openResponse(crypto.subtle, keys, this.secret, target, sealed);
    return answer(response);
  }

  async api(): Promise<{ status: number; code?: string | undefined }> {
    const url = `${server.origin}/api/me`;
    const proof = await joseProof(this.key, { htm: 'GET', htu: url, ath: await sha256(this.token) });
    return answer(await fetch(url, { headers: { cookie: this.cookie, authorization: `DPoP ${this.token}`, dpop: proof } }));
  }
}

async function loggedIn(): Promise<Client> {
  const client = await Client.open();
  await client.login();
  expect(await client.handshake()).toEqual({ status: 200 });
  expect(await client.api()).toEqual({ status: 200 });
  return client;
}

describe('(a) one client, one key, one session, flooding the API', () => {
  it('gets 429 ERR_TOKENSEC_DPOP_RATE_LIMITED after its share, while another client is never refused', async () => {
    const flooder = await loggedIn();
    const other = await loggedIn();
    const flood: { status: number; code?: string | undefined }[] = [];
    const others: { status: number; code?: string | undefined }[] = [];
    for (let round = 0; round < 20; round++) {
      flood.push(...(await Promise.all(Array.from({ length: 5 }, () => flooder.api()))));
      others.push(await other.api());
    }
    // Two of its ids were taken by its handshake and its first call.
    expect(flood.filter((r) => r.status === 200)).toHaveLength(PER_OWNER - 2);
    expect(flood.filter((r) => r.status !== 200)).toEqual(
      Array(100 - (PER_OWNER - 2)).fill({ status: 429, code: 'ERR_TOKENSEC_DPOP_RATE_LIMITED' }),
    );
    expect(others).toEqual(Array(20).fill({ status: 200 }));
    // Its handshake is its key's too: refused the same way, with its own code, not "replayed".
    expect(await flooder.handshake()).toEqual({ status: 429, code: 'ERR_TOKENSEC_DPOP_RATE_LIMITED' });
    expect(await other.handshake()).toEqual({ status: 200 });
  }, 60_000);
});

describe('(b) a visitor with a new session and key for every handshake, at full speed', () => {
  it('is refused once new keys have taken their part; the logged-in user is never refused', async () => {
    const user = await loggedIn();
    const visitor: { status: number; code?: string | undefined }[] = [];
    const userAnswers: { status: number; code?: string | undefined }[] = [];
    // Bounded: 2 × MAX handshakes, 8 at a time, each from a new session and a new key.
    for (let round = 0; round < (2 * MAX) / 8; round++) {
      visitor.push(...(await Promise.all(Array.from({ length: 8 }, async () => (await Client.open()).handshake()))));
      if (round % 5 === 0) userAnswers.push(await user.api());
    }
    userAnswers.push(await user.handshake(), await user.api(), await user.api());
    expect(userAnswers.every((a) => a.status === 200)).toBe(true);
    // The visitor's handshakes were refused: first by the app (not logged in), then by the store.
    expect(visitor.some((a) => a.status === 503 && a.code === 'ERR_TOKENSEC_STORE_FULL')).toBe(true);
    expect(visitor.every((a) => a.status !== 200)).toBe(true);
    expect(visitor.some((a) => a.code === 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF')).toBe(false);
  }, 120_000);
});
