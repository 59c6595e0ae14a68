/**
 * The browser client's handshake against real TokenSec servers, in Node (the key lives in memory
 * there): the server's stable code reaches the client's error, a server nonce is answered with one
 * retry, and a session that is not bound yet gets a key made in this run (claim tsb).
 */
import express from 'express';
import session from 'express-session';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { handshake, TokenSecError, type ClientHandshakeOptions } from '../../../client/index.js';
import { getDpopKey, madeHere } from '../../../client/dpop.js';
import tokenSec, { memoryStore, type ServerHandshakeOptions } from '../../../src/index.js';
import { fakeClock } from '../../support/clock.js';
import { TOKEN, listen } from '../../support/helpers.js';

const SECRET = 'client-retries-secret-0123';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/**
 * An app with express-session: POST /login (binds the session to `jkt` when given), POST /token
 * (the handshake, for logged-in sessions only), and an error handler that answers like
 * errorHandler(): the code in `TokenSec-Error` and in the JSON body, the error's headers copied.
 * `header: false` sends the code in the JSON body only, as an app's own handler may.
 */
async function app(dpop: ServerHandshakeOptions['dpop'] = {}, handshakeOptions: Partial<ServerHandshakeOptions> = {}) {
  const a = express();
  const requests: { proof: Record<string, unknown> | undefined }[] = [];
  const errors: string[] = [];
  a.use(express.json());
  // The Date header by the (possibly faked) clock: Node's own is cached by real time.
  a.use((_req, res, next) => {
    res.setHeader('Date', new Date().toUTCString());
    next();
  });
  a.use(session({ secret: 'session secret for tests', resave: false, saveUninitialized: false }));
  a.post('/login', (req, res) => {
    const s = req.session as unknown as { user: string; tokenSecJkt?: string };
    s.user = 'alice';
    if (req.body?.jkt) s.tokenSecJkt = String(req.body.jkt);
    res.json({ ok: true });
  });
  a.post(
    '/token',
    (req, res, next) => {
      const proof = req.headers.dpop;
      requests.push({ proof: proof ? JSON.parse(Buffer.from(String(proof).split('.')[1] ?? '', 'base64url').toString()) : undefined });
      if ((req.session as unknown as { user?: string }).user) next();
      else res.status(401).json({ code: 'NOT_LOGGED_IN', message: 'Log in first.' });
    },
    tokenSec.handshake({ secret: SECRET, terminate: true, payload: TOKEN, dpop, ...handshakeOptions }),
  );
  a.use(
    (
      err: { status?: number; code?: string; headers?: Record<string, string> },
      req: express.Request,
      res: express.Response,
      _next: express.NextFunction,
    ) => {
      errors.push(String(err.code));
      if (req.query.header !== 'false') res.set('TokenSec-Error', String(err.code));
      res
        .set(err.headers ?? {})
        .status(err.status ?? 500)
        .json({ code: err.code, message: 'refused' });
    },
  );
  const server = await listen(a);
  servers.push(server);
  /** Logs in (binding `jkt` when given) and returns the session cookie. */
  const login = async (jkt?: string) => {
    const response = await fetch(`${server.origin}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jkt }),
    });
    return (response.headers.getSetCookie()[0] ?? '').split(';', 1)[0] ?? '';
  };
  return { url: `${server.origin}/token`, requests, errors, login };
}

const outcome = (options: ClientHandshakeOptions) =>
  handshake({ secret: SECRET, ...options }).then(
    (payload) => ({ payload }),
    (error: TokenSecError) => ({ name: error.name, code: error.code, status: error.status }),
  );

describe("the client's error carries the server's reason", () => {
  it('403 KEY_MISMATCH, 500 PAYLOAD_TOO_LARGE and 401 not-logged-in each look different', async () => {
    const bound = await app();
    const cookie = await bound.login('A'.repeat(43)); // bound at login to a key this client does not hold
    const tooLarge = await app({}, { payload: () => 'x'.repeat(7000) });
    const tooLargeCookie = await tooLarge.login();
    const mismatch = await outcome({ uri: bound.url, headers: { cookie } });
    const large = await outcome({ uri: tooLarge.url, headers: { cookie: tooLargeCookie } });
    const notLoggedIn = await outcome({ uri: bound.url });
    expect(mismatch).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH', status: 403 });
    expect(large).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE', status: 500 });
    // The app's own 401 names no TokenSec code: the documented fallback, with the status.
    expect(notLoggedIn).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_HTTP_STATUS', status: 401 });
  });

  it('from the JSON body when there is no TokenSec-Error header; the header wins over the body', async () => {
    const bound = await app();
    const cookie = await bound.login('A'.repeat(43));
    expect(await outcome({ uri: `${bound.url}?header=false`, headers: { cookie } })).toMatchObject({
      code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH',
      status: 403,
    });
    const a = express();
    a.post('/both', (_req, res) =>
      res.status(503).set('TokenSec-Error', 'ERR_TOKENSEC_STORE_UNAVAILABLE').json({ code: 'ERR_TOKENSEC_TIMEOUT' }),
    );
    a.post('/foreign', (_req, res) => res.status(403).set('TokenSec-Error', 'EFOREIGN').json({ code: 'EFOREIGN' }));
    a.post('/csrf', (_req, res) => res.status(403).set('TokenSec-Error', 'EBADCSRFTOKEN').json({ code: 'EBADCSRFTOKEN' }));
    const server = await listen(a);
    servers.push(server);
    expect(await outcome({ uri: `${server.origin}/both` })).toMatchObject({ code: 'ERR_TOKENSEC_STORE_UNAVAILABLE', status: 503 });
    // Only TokenSec's own codes are taken: anything else is the fallback.
    expect(await outcome({ uri: `${server.origin}/foreign` })).toMatchObject({ code: 'ERR_TOKENSEC_HTTP_STATUS', status: 403 });
    // …but for the CSRF middlewares' own code, which has one of ours.
    expect(await outcome({ uri: `${server.origin}/csrf` })).toMatchObject({ code: 'ERR_TOKENSEC_CSRF_REFUSED', status: 403 });
  });

  it('403 KEY_MISMATCH with no other key stored: one request, no retry', async () => {
    // Nonces off: this test counts the key retries' requests (the nonce round trip: "handshake retries" below).
    const bound = await app({ nonce: false });
    const cookie = await bound.login('A'.repeat(43));
    await outcome({ uri: bound.url, headers: { cookie } });
    expect(bound.requests).toHaveLength(1);
  });
});

describe('handshake retries', () => {
  it('server nonces (the default): one 401 use_dpop_nonce at first contact, then the proof carries the nonce and is answered', async () => {
    const server = await app();
    const cookie = await server.login();
    expect(await outcome({ uri: server.url, headers: { cookie } })).toEqual({ payload: TOKEN });
    expect(server.errors).toEqual(['ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
    expect(server.requests.map((r) => typeof r.proof?.nonce)).toEqual(['undefined', 'string']);
  });

  it('steady state: the next handshake carries the nonce of the last answer, one request and no challenge', async () => {
    const server = await app();
    const cookie = await server.login();
    await outcome({ uri: server.url, headers: { cookie } });
    const before = server.requests.length;
    expect(await outcome({ uri: server.url, headers: { cookie } })).toEqual({ payload: TOKEN });
    expect(await outcome({ uri: server.url, headers: { cookie } })).toEqual({ payload: TOKEN });
    expect(server.requests.length - before).toBe(2);
    expect(server.errors).toEqual(['ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
  });

  it('a nonce whose windows have passed: 401 NONCE_STALE, one retry with the nonce of that answer', async () => {
    const server = await app();
    const cookie = await server.login();
    await outcome({ uri: server.url, headers: { cookie } });
    const clock = fakeClock(Date.now() + 120_000);
    try {
      expect(await outcome({ uri: server.url, headers: { cookie } })).toEqual({ payload: TOKEN });
    } finally {
      clock.set(Date.now() - 120_000);
      vi.useRealTimers();
    }
    expect(server.errors).toEqual(['ERR_TOKENSEC_DPOP_NONCE_REQUIRED', 'ERR_TOKENSEC_DPOP_NONCE_STALE']);
    const [stale, fresh] = server.requests.slice(-2).map((r) => r.proof?.nonce);
    expect(stale).not.toBe(fresh);
  });

  it('a refusal a new proof cannot cure (a full binding store, 503): one request, no retry', async () => {
    const server = await app({ bindingStore: memoryStore({ max: 1 }) });
    const first = await server.login();
    await outcome({ uri: server.url, headers: { cookie: first } });
    const second = await server.login();
    const before = server.requests.length;
    expect(await outcome({ uri: server.url, headers: { cookie: second } })).toEqual({
      name: 'TokenSecError',
      code: 'ERR_TOKENSEC_BINDING_STORE_FULL',
      status: 503,
    });
    expect(server.requests.length - before).toBe(1);
  });

  it('a session with no key bound and a key from an earlier run: 409, then a new key made here, sent with tsb, is bound', async () => {
    // Nonces off: this test counts the key retries' requests (the nonce round trip is tested above).
    const server = await app({ nonce: false });
    const cookie = await server.login();
    const earlier = (await getDpopKey()).thumbprint;
    madeHere.clear(); // as after a reload: the stored key was not made in this run
    expect(await outcome({ uri: server.url, headers: { cookie } })).toEqual({ payload: TOKEN });
    expect(server.errors).toEqual(['ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED']);
    expect(server.requests.map((r) => r.proof?.tsb)).toEqual([undefined, true]);
    const now = (await getDpopKey()).thumbprint;
    expect(now).not.toBe(earlier);
    expect(madeHere.has(now)).toBe(true);
    // The session is bound to the new key: the next handshake needs no tsb and gets no 409.
    madeHere.clear();
    expect(await outcome({ uri: server.url, headers: { cookie } })).toEqual({ payload: TOKEN });
    expect(server.errors).toHaveLength(1);
  });

  it('login-time binding: rotateDpopKey() makes the key in this run; the session bound at login to it answers at once', async () => {
    const { rotateDpopKey } = await import('../../../client/dpop.js');
    // Nonces off: "answers at once" counts requests (the nonce round trip is tested above).
    const server = await app({ nonce: false });
    const cookie = await server.login((await rotateDpopKey()).thumbprint);
    expect(await outcome({ uri: server.url, headers: { cookie } })).toEqual({ payload: TOKEN });
    expect(server.errors).toEqual([]);
  });
});
