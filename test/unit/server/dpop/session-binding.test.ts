/**
 * A session is bound to one DPoP key, made fresh by the client for it (proof claim `tsb: true`),
 * atomically through an AtomicStore: unbound + no tsb is 409 ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED,
 * unbound + tsb binds, bound to this key passes, bound to another is 403 KEY_MISMATCH. Two
 * concurrent first handshakes end with one bound key. Logout unbinds (tokenSec.unbind or a new
 * session). A session without an id (cookie-session) is refused unless the app brings its own hooks.
 */
import cookieSession from 'cookie-session';
import express from 'express';
import session from 'express-session';
import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createDpopProof, getDpopKey, rotateDpopKey } from '../../../../client/dpop.js';
import { currentNonce } from '../../../support/proofs.js';
import tokenSec, { type HandshakeDpopOptions } from '../../../../src/index.js';
import type { AtomicStore } from '../../../../src/server/store.js';
import { barrier, testMemoryStore } from '../../../support/atomic-stores.js';
import { handshakeApp } from '../../../support/handshake.js';
import { TOKEN, listen, signedHandshake } from '../../../support/helpers.js';

const SECRET = 'session-binding-secret-0123';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

interface AppOptions {
  dpop?: HandshakeDpopOptions<express.Request>;
  cookies?: 'express-session' | 'cookie-session';
  maxAge?: number;
  /** Unbind at logout with tokenSec.unbind (default), or regenerate or destroy the session. */
  logout?: 'unbind' | 'regenerate' | 'destroy';
  /** Regenerate the session at login, as README's login does. */
  regenerateAtLogin?: boolean;
}

/** An app as README shows it: login, a handshake that hands a token to a logged-in user only, logout. */
async function app({ dpop = {}, cookies = 'express-session', maxAge, logout = 'unbind', regenerateAtLogin = false }: AppOptions = {}) {
  const bindingStore = dpop.bindingStore;
  const { app: a } = handshakeApp(
    {
      secret: SECRET,
      terminate: true,
      dpop,
      payload: (req) => {
        if (!(req.session as unknown as { user?: string } | undefined)?.user) throw new Error('not logged in');
        return TOKEN;
      },
    },
    {
      errors: 'errorHandler',
      before: (a) => {
        if (cookies === 'cookie-session') a.use(cookieSession({ name: 'session', keys: ['cookie-session key for tests'] }));
        else a.use(session({ secret: 'session secret for tests', resave: false, saveUninitialized: false, cookie: { maxAge } }));
        a.post('/login', async (req, res, next) => {
          try {
            if (regenerateAtLogin)
              await new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
            (req.session as unknown as { user: string }).user = 'alice';
            res.json({ ok: true });
          } catch (error) {
            next(error);
          }
        });
        a.post('/logout', async (req, res, next) => {
          try {
            if (logout === 'regenerate') {
              await new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
            } else if (logout === 'destroy') {
              await new Promise<void>((resolve, reject) => req.session.destroy((err) => (err ? reject(err) : resolve())));
            } else {
              await tokenSec.unbind(req, bindingStore ? { store: bindingStore } : {});
              delete (req.session as unknown as { user?: string }).user;
            }
            res.json({ ok: true });
          } catch (error) {
            next(error);
          }
        });
      },
    },
  );
  const server = await listen(a);
  servers.push(server);
  return { origin: server.origin, url: `${server.origin}/token` };
}

const cookieOf = (response: Response) => (response.headers.getSetCookie()[0] ?? '').split(';', 1)[0] ?? '';

async function login(origin: string, cookie = ''): Promise<string> {
  const response = await fetch(`${origin}/login`, { method: 'POST', headers: cookie ? { cookie } : {} });
  expect(response.status).toBe(200);
  return cookieOf(response) || cookie;
}

const post = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers });

async function answer(response: Response) {
  const body = response.status === 200 ? undefined : ((await response.json()) as { code?: string });
  return { status: response.status, code: body?.code, header: response.headers.get('tokensec-error') ?? undefined };
}

const refused = (status: number, code: string) => ({ status, code, header: code });
const ok = { status: 200, code: undefined, header: undefined };

describe('key integrity: only a key the client made fresh binds an unbound session', () => {
  it('unbound + no tsb: 409 NEW_KEY_REQUIRED; unbound + tsb: bound; this key again, with or without tsb: on; another key: 403', async () => {
    const { origin, url } = await app();
    const cookie = await login(origin);
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET, { tsb: false })).headers, cookie }))).toEqual(
      refused(409, 'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED'),
    );
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(ok);
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET, { tsb: false })).headers, cookie }))).toEqual(ok);
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(ok);
    await rotateDpopKey();
    // A planted or stale key claiming to be fresh changes nothing once the session is bound.
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(
      refused(403, 'ERR_TOKENSEC_DPOP_KEY_MISMATCH'),
    );
  });

  it('tsb must be exactly true (a string "true" is not)', async () => {
    const { origin, url } = await app();
    const cookie = await login(origin);
    const bound = await signedHandshake(url, SECRET, { tsb: false });
    const tsh = createHash('sha256').update(bound.value).digest('base64url');
    const proof = await createDpopProof({
      method: 'POST',
      url,
      key: await getDpopKey(),
      claims: { tsh, tsb: 'true' },
      nonce: currentNonce(),
    });
    expect(await answer(await post(url, { 'x-tokensec-handshake': bound.value, dpop: proof, cookie }))).toEqual(
      refused(409, 'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED'),
    );
  });

  it('the bound key is mirrored into req.session.tokenSecJkt and the store entry lives as long as the session cookie', async () => {
    const calls: { value: string; ttl: number }[] = [];
    const memory = testMemoryStore();
    const bindingStore: AtomicStore = {
      addIfAbsent: (key, value, ttl) => (calls.push({ value, ttl }), memory.addIfAbsent(key, value, ttl)),
      delete: (key) => memory.delete(key),
    };
    const { origin, url } = await app({ dpop: { bindingStore }, maxAge: 3_600_000 });
    const cookie = await login(origin);
    const { headers, jkt } = await signedHandshake(url, SECRET);
    expect((await post(url, { ...headers, cookie })).status).toBe(200);
    expect(calls).toEqual([{ value: jkt, ttl: 3600 }]);
    // Read from the session (the mirror) from now on: the store is not asked again.
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie })).status).toBe(200);
    expect(calls).toHaveLength(1);
  });
});

describe('the first binding is atomic', () => {
  it('two concurrent first handshakes with two keys: exactly one is bound, the other gets 403 KEY_MISMATCH', async () => {
    const bindingStore = barrier(testMemoryStore(), 2);
    const { origin, url } = await app({ dpop: { bindingStore } });
    const cookie = await login(origin);
    const first = await signedHandshake(url, SECRET);
    await rotateDpopKey();
    const second = await signedHandshake(url, SECRET);
    expect(first.jkt).not.toBe(second.jkt);
    const answers = await Promise.all(
      [post(url, { ...first.headers, cookie }), post(url, { ...second.headers, cookie })].map(async (r) => answer(await r)),
    );
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status !== 200)).toEqual([refused(403, 'ERR_TOKENSEC_DPOP_KEY_MISMATCH')]);
    // The winner's key keeps working; the loser's never does.
    const winner = answers[0]?.status === 200 ? first : second;
    const loser = winner === first ? second : first;
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET, { tsb: false })).headers, cookie }))).toEqual(
      (await getDpopKey()).thumbprint === winner.jkt ? ok : refused(403, 'ERR_TOKENSEC_DPOP_KEY_MISMATCH'),
    );
    expect(loser.jkt).not.toBe(winner.jkt);
  });

  it('two concurrent first handshakes with one key (two tabs, one stored key): both get a token', async () => {
    const bindingStore = barrier(testMemoryStore(), 2);
    const { origin, url } = await app({ dpop: { bindingStore } });
    const cookie = await login(origin);
    const [one, two] = [await signedHandshake(url, SECRET), await signedHandshake(url, SECRET)];
    const answers = await Promise.all([post(url, { ...one.headers, cookie }), post(url, { ...two.headers, cookie })]);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
  });

  it('app hooks with bind(): the atomic operation is theirs (keyed here by user)', async () => {
    const store = testMemoryStore();
    const user = (req: express.Request) => String(req.headers['x-user']);
    const sessionKey = {
      get: () => undefined,
      set: () => {
        throw new Error('set() is not called when bind() is given');
      },
      bind: (req: express.Request, jkt: string) => store.addIfAbsent(`bind:${user(req)}`, jkt, 600),
    };
    const { origin, url } = await app({ dpop: { sessionKey } });
    const cookie = await login(origin);
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie, 'x-user': 'alice' })).status).toBe(200);
    await rotateDpopKey();
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie, 'x-user': 'alice' }))).toEqual(
      refused(403, 'ERR_TOKENSEC_DPOP_KEY_MISMATCH'),
    );
  });
});

describe('a store that fails or hangs: 503 ERR_TOKENSEC_STORE_UNAVAILABLE in bounded time', () => {
  it.each([
    ['rejects', () => Promise.reject(new Error('connection refused'))],
    ['never answers', () => new Promise<undefined>(() => undefined)],
  ])('a binding store that %s', async (_name, addIfAbsent) => {
    const { origin, url } = await app({ dpop: { bindingStore: { addIfAbsent, delete: () => undefined }, storeTimeout: 200 } });
    const cookie = await login(origin);
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(
      refused(503, 'ERR_TOKENSEC_STORE_UNAVAILABLE'),
    );
  });
});

describe('logout and login: the server unbinds', () => {
  it.each(['unbind', 'regenerate'] as const)('after logout (%s) and login, a fresh key binds (no 403)', async (logout) => {
    const bindingStore = testMemoryStore();
    const { origin, url } = await app({ dpop: { bindingStore }, logout });
    let cookie = await login(origin);
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie })).status).toBe(200);
    const out = await fetch(`${origin}/logout`, { method: 'POST', headers: { cookie } });
    expect(out.status).toBe(200);
    cookie = await login(origin, cookieOf(out) || cookie);
    await rotateDpopKey(); // the page deleted its key at logout and makes a fresh one
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(ok);
    if (logout === 'unbind') expect(bindingStore.size()).toBe(1);
  });

  it('without the server step, the same session stays bound: 403 KEY_MISMATCH', async () => {
    const { origin, url } = await app();
    const cookie = await login(origin);
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie })).status).toBe(200);
    await rotateDpopKey();
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(
      refused(403, 'ERR_TOKENSEC_DPOP_KEY_MISMATCH'),
    );
  });

  it('unbind checks its options and passes a request without a session', async () => {
    await expect(tokenSec.unbind({}, { stor: 1 } as never)).rejects.toThrow(/unknown option "stor". Did you mean "store"\?/);
    await expect(tokenSec.unbind({}, { store: {} as never })).rejects.toThrow(/option "store" must be the AtomicStore/);
    await expect(tokenSec.unbind({})).resolves.toBeUndefined();
  });
});

describe('a binding lives exactly as long as its session', () => {
  it.each(['regenerate', 'destroy', 'unbind'] as const)('logout (%s): the binding is deleted from the store', async (logout) => {
    const bindingStore = testMemoryStore();
    const { origin, url } = await app({ dpop: { bindingStore }, logout });
    const cookie = await login(origin);
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie })).status).toBe(200);
    expect(bindingStore.size()).toBe(1);
    expect((await fetch(`${origin}/logout`, { method: 'POST', headers: { cookie } })).status).toBe(200);
    expect(bindingStore.size()).toBe(0);
  });

  it('a login that regenerates the session deletes the old session’s binding; the new session binds a fresh key', async () => {
    const bindingStore = testMemoryStore();
    const { origin, url } = await app({ dpop: { bindingStore }, regenerateAtLogin: true });
    let cookie = await login(origin);
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie })).status).toBe(200);
    cookie = await login(origin, cookie);
    expect(bindingStore.size()).toBe(0);
    await rotateDpopKey();
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(ok);
    expect(bindingStore.size()).toBe(1);
  });

  it('one account holder logging in again and again (70 rounds, a store of 60 keys): another user’s first handshake is answered', async () => {
    const bindingStore = tokenSec.memoryStore({ max: 60 });
    const { origin, url } = await app({ dpop: { bindingStore }, regenerateAtLogin: true });
    let cookie = '';
    for (let round = 0; round < 70; round++) {
      cookie = await login(origin, cookie);
      expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(ok);
    }
    const other = await login(origin);
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie: other }))).toEqual(ok);
  });

  it('more live bound sessions than the store holds: the next first handshake gets 503 BINDING_STORE_FULL until a session ends', async () => {
    const bindingStore = tokenSec.memoryStore({ max: 3 });
    const { origin, url } = await app({ dpop: { bindingStore }, logout: 'regenerate' });
    const users = [await login(origin), await login(origin), await login(origin)];
    for (const cookie of users) expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie })).status).toBe(200);
    const fourth = await login(origin);
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie: fourth }))).toEqual(
      refused(503, 'ERR_TOKENSEC_BINDING_STORE_FULL'),
    );
    // The bound sessions go on working; one logs out, and the waiting user's handshake binds.
    expect((await post(url, { ...(await signedHandshake(url, SECRET, { tsb: false })).headers, cookie: users[0]! })).status).toBe(200);
    expect((await fetch(`${origin}/logout`, { method: 'POST', headers: { cookie: users[1]! } })).status).toBe(200);
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie: fourth }))).toEqual(ok);
  });
});

describe('binding needs a server-side session', () => {
  it('cookie-session with the default binding: 500 ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE on the first handshake', async () => {
    const { origin, url } = await app({ cookies: 'cookie-session' });
    const cookie = (await fetch(`${origin}/login`, { method: 'POST' })).headers
      .getSetCookie()
      .map((c) => c.split(';', 1)[0])
      .join('; ');
    expect(await answer(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual(
      refused(500, 'ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE'),
    );
  });

  it('no session middleware at all: nothing to bind to, the handshake is answered as before', async () => {
    const { app: a } = handshakeApp({ secret: SECRET, terminate: true, payload: TOKEN }, { errors: 'errorHandler' });
    const server = await listen(a);
    servers.push(server);
    const url = `${server.origin}/token`;
    expect((await post(url, (await signedHandshake(url, SECRET, { tsb: false })).headers)).status).toBe(200);
  });
});

describe('options are checked at startup', () => {
  it.each([
    [{ bindingStore: {} }, /"dpop.bindingStore" must be an AtomicStore/],
    [{ bindingStore: testMemoryStore(), sessionKey: false }, /"dpop.bindingStore" and "dpop.sessionKey" do not go together/],
    [{ sessionKey: { get: () => undefined, set: () => undefined, bind: 1 } }, /"dpop.sessionKey" must be false or an object/],
    [{ storeTimeout: 0 }, /"dpop.storeTimeout" must be a whole number of milliseconds from 1 to 60000/],
  ])('%j', (dpop, message) => {
    expect(() => tokenSec.handshake({ payload: TOKEN, dpop: dpop as never })).toThrow(message);
  });
});
