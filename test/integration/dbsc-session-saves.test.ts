/**
 * DBSC and the other requests of the same session. Chromium registers 30–120 ms after the login
 * answer, while the page's next requests run on the same session; express-session's last save
 * wins. Here a page request loads the session before the registration and saves it (a field it
 * changed) after the registration's answer, held by a promise the test resolves: no sleeps. With
 * express-session's memory store and with connect-redis on a real redis-server, the session the
 * server reported bound stays bound, and its refreshes succeed.
 */
import { createHash } from 'node:crypto';
import { RedisStore } from 'connect-redis';
import express from 'express';
import session, { MemoryStore, type Store } from 'express-session';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec, { type AtomicStore } from '../../src/index.js';
import { challengeOf, Client, dbscProof, ecTestKey, registrationProof, registrationRequest } from '../support/dbsc.js';
import { defined, listen } from '../support/helpers.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const REGISTRATION = '/tokensec/dbsc/registration';
const REFRESH = '/tokensec/dbsc/refresh';
const BOUND = '__Host-tokensec-dbsc';

declare module 'express-session' {
  interface SessionData {
    userId: string;
    visits: number;
  }
}

/** A promise and its resolve, to order two requests without timing. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

let redis: RedisServer;
let redisClient: ReturnType<typeof createClient>;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  redisClient = createClient({ url: redis.url });
  await redisClient.connect();
});
afterAll(async () => {
  for (const close of closers) await close();
  await redisClient?.quit();
  await redis?.stop();
});

const stores: [string, () => { sessions: Store; challengeStore?: AtomicStore }][] = [
  ['express-session memory store', () => ({ sessions: new MemoryStore() })],
  [
    'connect-redis',
    () => ({
      sessions: new RedisStore({ client: redisClient, prefix: `sess${Math.random().toString(36).slice(2)}:` }),
      challengeStore: tokenSec.redisStore({ client: redisClient }),
    }),
  ],
];

describe.each(stores)('%s', (_name, make) => {
  /** README's session setup; `/page` holds until the test opens its gate, then counts a visit in the session and saves it. */
  async function app() {
    const { sessions, challengeStore } = make();
    const dbsc = tokenSec.dbsc({ secret: 'session-saves DBSC secret, 32 bytes or more', ...(challengeStore ? { challengeStore } : {}) });
    const gates = { entered: gate(), release: gate() };
    const a = express();
    a.use(
      session({ store: sessions, secret: 'session-saves secret', resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } }),
    );
    a.use(dbsc.middleware);
    a.post('/login', (req, res, next) => {
      req.session.regenerate((error) => {
        if (error) return next(error);
        req.session.userId = 'alice';
        dbsc.requestRegistration(req, res).then(() => res.json({ user: 'alice' }), next);
      });
    });
    a.get('/page', async (req, res) => {
      gates.entered.open();
      await gates.release.opened;
      req.session.visits = (req.session.visits ?? 0) + 1;
      res.json({ visits: req.session.visits });
    });
    a.post('/logout', (req, res, next) => req.session.destroy((error) => (error ? next(error) : res.json({}))));
    a.post('/regenerate', (req, res, next) => req.session.regenerate((error) => (error ? next(error) : res.json({}))));
    a.get('/account', dbsc.requireBoundSession, (req, res) => res.json({ user: req.session.userId, visits: req.session.visits ?? 0 }));
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    closers.push(server.close);
    const read = (sid: string) =>
      new Promise<Record<string, unknown> | undefined>((resolve, reject) =>
        sessions.get(sid, (error, value) => (error ? reject(error) : resolve(value as Record<string, unknown> | undefined))),
      );
    const sidOf = (client: Client) => {
      const cookie = decodeURIComponent(defined(client.cookies.get('connect.sid'), 'session cookie'));
      return cookie.slice(2, cookie.lastIndexOf('.'));
    };
    /** What the session store holds for this client's session now, and the DBSC record beside it. */
    const stored = (client: Client) => read(sidOf(client));
    const record = (client: Client) =>
      read(`tokensec:dbsc:${createHash('sha256').update(sidOf(client)).digest('base64url')}`) as Promise<
        { cookie: { expires: string }; tokenSecDbsc: unknown } | undefined
      >;
    return { origin: server.origin, gates, stored, record, read };
  }

  it('a page request that loads the session before the registration and saves it after: still bound, the refresh succeeds', async () => {
    const { origin, gates, stored } = await app();
    const browser = new Client(origin);
    const { challenge } = registrationRequest((await browser.send('POST', '/login')).headers.get('secure-session-registration'));
    const page = browser.send('GET', '/page');
    await gates.entered.opened; // the page's session is loaded: without the key
    const key = ecTestKey();
    const registered = await browser.send('POST', REGISTRATION, { 'secure-session-response': registrationProof(key, { jti: challenge }) });
    expect(registered.status).toBe(200);
    gates.release.open();
    expect(await (await page).json()).toEqual({ visits: 1 });
    // The race happened: the page's save wrote back the session as it loaded it, pending only.
    expect((await stored(browser))?.tokenSecDbsc).toEqual({ pending: { challenge } });

    const { id, challenge: next } = challengeOf(registered);
    const live = browser.cookie;
    browser.cookies.delete(BOUND);
    const refused = await browser.send('GET', '/account');
    expect([refused.status, refused.headers.get('tokensec-error')]).toEqual([401, 'ERR_TOKENSEC_DBSC_REQUIRED']);
    const refreshed = await browser.send('POST', REFRESH, {
      'sec-secure-session-id': id,
      'secure-session-response': dbscProof(key, { jti: next }),
    });
    expect(refreshed.status).toBe(200);
    const account = await browser.send('GET', '/account');
    expect([account.status, await account.json()]).toEqual([200, { user: 'alice', visits: 1 }]);
    // The key is back in the session too, and the copied jar's cookie still works only while live.
    expect((await stored(browser))?.tokenSecDbsc).toMatchObject({ id, alg: 'ES256', jwk: key.jwk });
    expect((await fetch(`${origin}/account`, { headers: { cookie: live } })).status).toBe(200);
  });

  it('a page request that saves the session while a refresh runs, refresh after refresh: every refresh succeeds', async () => {
    const { origin, gates, record } = await app();
    const browser = new Client(origin);
    const { challenge } = registrationRequest((await browser.send('POST', '/login')).headers.get('secure-session-registration'));
    const key = ecTestKey();
    const registered = await browser.send('POST', REGISTRATION, { 'secure-session-response': registrationProof(key, { jti: challenge }) });
    let { id, challenge: next } = challengeOf(registered);
    const page = browser.send('GET', '/page');
    await gates.entered.opened;
    let lastRefresh = 0;
    for (let round = 0; round < 3; round++) {
      lastRefresh = Date.now();
      const refreshed = await browser.send('POST', REFRESH, {
        'sec-secure-session-id': id,
        'secure-session-response': dbscProof(key, { jti: next }),
      });
      expect(refreshed.status).toBe(200);
      ({ id, challenge: next } = challengeOf(refreshed));
      if (round === 0) {
        gates.release.open();
        expect((await page).status).toBe(200);
      }
    }
    // The record beside the session: the key, and the session's expiry as the last refresh set it, so it dies with the session.
    const kept = await record(browser);
    expect(kept?.tokenSecDbsc).toEqual({ id, alg: 'ES256', jwk: key.jwk, jkt: expect.any(String) });
    const expires = new Date(kept!.cookie.expires).getTime();
    expect(expires).toBeGreaterThanOrEqual(lastRefresh + 3_600_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 3_600_000);
    browser.cookies.delete(BOUND);
    expect((await browser.send('GET', '/account')).status).toBe(401);
  });

  it.each(['/logout', '/regenerate'])('%s: the DBSC record goes with the session', async (path) => {
    const { origin, record, read } = await app();
    const browser = new Client(origin);
    const { challenge } = registrationRequest((await browser.send('POST', '/login')).headers.get('secure-session-registration'));
    const response = await browser.send('POST', REGISTRATION, {
      'secure-session-response': registrationProof(ecTestKey(), { jti: challenge }),
    });
    expect(response.status).toBe(200);
    const cookie = decodeURIComponent(defined(browser.cookies.get('connect.sid'), 'session cookie'));
    const sid = cookie.slice(2, cookie.lastIndexOf('.'));
    expect((await record(browser))?.tokenSecDbsc).toMatchObject({ id: challengeOf(response).id });
    expect((await browser.send('POST', path)).status).toBe(200);
    // Gone from the store (memory: undefined, connect-redis: null).
    expect((await read(sid)) ?? undefined).toBeUndefined();
    expect((await read(`tokensec:dbsc:${createHash('sha256').update(sid).digest('base64url')}`)) ?? undefined).toBeUndefined();
  });

  it('a session without a server-side store (cookie-session): 500 ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE at login, naming the fix', async () => {
    const dbsc = tokenSec.dbsc({ secret: 'session-saves DBSC secret, 32 bytes or more' });
    const a = express();
    a.use((req, _res, next) => {
      (req as unknown as { session: object }).session = {}; // what cookie-session gives: a session object, no id, no store
      next();
    });
    a.use(dbsc.middleware);
    a.post('/login', (req, res, next) => void dbsc.requestRegistration(req, res).then(() => res.json({}), next));
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    closers.push(server.close);
    const response = await fetch(`${server.origin}/login`, { method: 'POST' });
    expect([response.status, (await response.json()).code]).toEqual([500, 'ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE']);
    expect(response.headers.get('secure-session-registration')).toBeNull();
  });
});
