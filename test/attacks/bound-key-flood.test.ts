/**
 * Attacks on the replay store's room by users who are allowed in, against a real app on 127.0.0.1
 * (express-session, a login, a handshake that binds the session to one DPoP key and hands a token
 * naming it, API routes behind dpop(), one memoryStore() shared by both):
 * (c) a logged-in user on a bound session sending a fresh key per handshake, at full speed: each
 *     handshake is refused (403) before its proof id is recorded, so the store keeps nothing of it;
 * (d) a user logging in in a loop, each login binding a new key that then floods the API: keys
 *     in use fill the store, but a user bound before (idle: none of its ids left in the store) is
 *     never refused, because the store learnt its key is bound and keeps room for it.
 * On 3.1.0, (c) filled the store with refused handshakes (then 503 for everyone) and (d) refused
 * the idle user (503), as the store counted only keys that had signed within the last window.
 * Each runs with a small store, and (c) and the store's arithmetic of (d) at the default size.
 */
import { randomBytes } from 'node:crypto';
import express from 'express';
import session from 'express-session';
import { calculateJwkThumbprint } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createKeys, openResponse, requestHeader } from '../../client/crypto.js';
import tokenSec, { type AtomicStore } from '../../src/index.js';
import { fakeClock } from '../support/clock.js';
import { listen } from '../support/helpers.js';
import { joseProof, proofKey, sha256, type ProofKey } from '../support/proofs.js';

declare module 'express-session' {
  interface SessionData {
    secret?: string;
    userId: string;
  }
}

afterEach(() => {
  vi.useRealTimers();
});

type Answer = { status: number; code?: string | undefined };
const servers: Awaited<ReturnType<typeof listen>>[] = [];

/** The app, with `store` as the replay store of both middlewares; counts the proof ids it recorded. */
async function startApp(store: AtomicStore) {
  const recorded = { count: 0 };
  const counting: AtomicStore = {
    addIfAbsent: (key, value, ttl, owner) => {
      const earlier = store.addIfAbsent(key, value, ttl, owner);
      if (earlier === undefined) recorded.count++;
      return earlier;
    },
    delete: (key) => store.delete(key),
    markBound: (owner, ttl) => store.markBound?.(owner, ttl),
  };
  const app = express();
  app.use(session({ secret: 'session secret for the bound-key tests', resave: false, saveUninitialized: false }));
  app.get('/', (req, res) => {
    req.session.secret ??= randomBytes(24).toString('base64url');
    res.json({ secret: req.session.secret });
  });
  app.post('/login', (req, res, next) =>
    req.session.regenerate((error) => {
      if (error) return next(error);
      req.session.secret = randomBytes(24).toString('base64url');
      req.session.userId = `user-${randomBytes(4).toString('hex')}`;
      res.json({ secret: req.session.secret });
    }),
  );
  app.post(
    '/token',
    tokenSec.handshake({
      terminate: true,
      secret: (req) => req.session.secret,
      dpop: { replayStore: counting },
      payload: (req, _res, { jkt }) => {
        if (!req.session.userId) throw Object.assign(new Error('not logged in'), { status: 401 });
        const exp = Math.floor(Date.now() / 1000) + 300;
        return Buffer.from(JSON.stringify({ sub: req.session.userId, exp, cnf: { jkt } })).toString('base64url');
      },
    }),
  );
  app.get(
    '/api/me',
    tokenSec.dpop({ replayStore: counting, verifyToken: (token) => JSON.parse(Buffer.from(token, 'base64url').toString()) }),
    (req, res) => res.json({ sub: req.tokenSec?.claims.sub }),
  );
  app.use(tokenSec.errorHandler());
  const server = await listen(app);
  servers.push(server);
  return { origin: server.origin, recorded, close: server.close };
}

const answer = async (response: Response): Promise<Answer> => ({
  status: response.status,
  code: response.ok ? undefined : ((await response.json()) as { code?: string }).code,
});

/** A browser: its cookie jar (one session), its DPoP key, and the token its handshake got. */
class Browser {
  cookie = '';
  secret = '';
  token = '';
  constructor(
    readonly origin: string,
    public key: ProofKey,
  ) {}

  /** Logs in with a new key; `answer` is its first handshake's. */
  static async logIn(origin: string): Promise<{ browser: Browser; answer: Answer }> {
    const browser = new Browser(origin, await proofKey());
    const response = await fetch(`${origin}/login`, { method: 'POST' });
    browser.cookie = response.headers.getSetCookie()[0]!.split(';', 1)[0]!;
    browser.secret = ((await response.json()) as { secret: string }).secret;
    return { browser, answer: await browser.handshake() };
  }

  static async loggedIn(origin: string): Promise<Browser> {
    const { browser, answer } = await Browser.logIn(origin);
    expect(answer).toEqual({ status: 200 });
    return browser;
  }

  async handshake(key = this.key): Promise<Answer> {
    const url = `${this.origin}/token`;
    const jkt = await calculateJwkThumbprint(key.jwk);
    const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/token', jkt: new Uint8Array(Buffer.from(jkt, 'base64url')) };
    const keys = await createKeys(crypto.subtle);
    const value = await requestHeader(crypto.subtle, keys, this.secret, target);
    const proof = await joseProof(key, { htm: 'POST', htu: url, tsh: await sha256(value), tsb: true });
    const response = await fetch(url, { method: 'POST', headers: { cookie: this.cookie, 'x-tokensec-handshake': value, dpop: proof } });
    const sealed = response.headers.get('x-tokensec-handshake');
    if (sealed) this.token = await openResponse(crypto.subtle, keys, this.secret, target, sealed);
    return answer(response);
  }

  async api(): Promise<Answer> {
    const url = `${this.origin}/api/me`;
    const proof = await joseProof(this.key, { htm: 'GET', htu: url, ath: await sha256(this.token) });
    return answer(await fetch(url, { headers: { authorization: `DPoP ${this.token}`, dpop: proof } }));
  }
}

describe('(c) a logged-in user sending a fresh key per handshake, at full speed', () => {
  it.each([
    ['a store of 300', () => tokenSec.memoryStore({ max: 300 }), 400],
    ['the default store', () => tokenSec.memoryStore(), 200],
  ])(
    '%s: every handshake 403, none recorded; another user logs in and calls the API',
    async (_name, makeStore, handshakes) => {
      const app = await startApp(makeStore());
      const flooder = await Browser.loggedIn(app.origin);
      const before = app.recorded.count;
      const answers: Answer[] = [];
      for (let round = 0; round < handshakes / 10; round++) {
        const keys = await Promise.all(Array.from({ length: 10 }, () => proofKey()));
        answers.push(...(await Promise.all(keys.map((key) => flooder.handshake(key)))));
      }
      expect(answers).toEqual(Array(handshakes).fill({ status: 403, code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH' }));
      expect(app.recorded.count).toBe(before);
      const other = await Browser.loggedIn(app.origin);
      expect(await other.api()).toEqual({ status: 200 });
      expect(await flooder.api()).toEqual({ status: 200 });
    },
    120_000,
  );
});

describe('(d) a user logging in in a loop, each new key flooding the API', () => {
  it('a store of 300: the idle user bound before is never refused', async () => {
    const clock = fakeClock(Date.UTC(2026, 0, 1));
    const app = await startApp(tokenSec.memoryStore({ max: 300 }));
    const idle = await Browser.loggedIn(app.origin);
    expect(await idle.api()).toEqual({ status: 200 });
    // Idle past every window: none of its proof ids is left in the store.
    clock.advance(70_000);
    const flood: Answer[] = [];
    const idleAnswers: Answer[] = [];
    for (let login = 0; login < 120; login++) {
      const { browser: flooder, answer: loggedIn } = await Browser.logIn(app.origin);
      flood.push(loggedIn);
      // Its login's handshake refused (the store is full for new keys): no token to flood with.
      if (loggedIn.status === 200) flood.push(...(await Promise.all(Array.from({ length: 6 }, () => flooder.api()))));
    }
    // The flood filled the store: its keys were refused (429 over their share, 503 once full).
    expect(flood.some((a) => a.code === 'ERR_TOKENSEC_STORE_FULL')).toBe(true);
    expect(flood.some((a) => a.code === 'ERR_TOKENSEC_DPOP_RATE_LIMITED')).toBe(true);
    // Its share (maxPerOwner: 4 for a store of 300), in the same frozen second.
    for (let n = 0; n < 4; n++) idleAnswers.push(await idle.api());
    expect(idleAnswers).toEqual(Array(4).fill({ status: 200 }));
  }, 120_000);

  it('the default store (1,000,000): a million ids of keys bound in a loop leave a bound idle key its room', () => {
    fakeClock(Date.UTC(2026, 0, 1));
    const store = tokenSec.memoryStore();
    const ttl = 65;
    store.markBound!('idle-user-key', 300);
    // Logins in a loop: each binds a new key (marked), whose proofs then take its share (15,625).
    let full = 0;
    let limited = 0;
    for (let login = 0, id = 0; full < 100; login++) {
      store.markBound!(`flood-key-${login}`, 300);
      for (let n = 0; n < 15_700; n++) {
        try {
          store.addIfAbsent(`jti:flood-key-${login}:${id++}`, '1', ttl, `flood-key-${login}`);
        } catch (error) {
          if ((error as { code?: string }).code === 'ERR_TOKENSEC_STORE_FULL') full++;
          else limited++;
          break;
        }
      }
    }
    expect(limited).toBeGreaterThanOrEqual(60);
    for (let n = 0; n < 8; n++) expect(store.addIfAbsent(`jti:idle-user-key:${n}`, '1', ttl, 'idle-user-key')).toBeUndefined();
  }, 120_000);
});
