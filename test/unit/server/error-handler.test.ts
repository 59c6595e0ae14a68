/**
 * tokenSec.errorHandler() (src/server/error-handler.ts) answers the stable codes with their status
 * and headers, keeps 5xx details private to the log, and logs what the developer needs (never a
 * token, proof, secret or payload).
 */
import cookieParser from 'cookie-parser';
import { csrfSync } from 'csrf-sync';
import csurf from 'csurf';
import express from 'express';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import tokenSec, { TokenSecError, type ErrorHandlerOptions } from '../../../src/index.js';
import { CSRF_REFUSED_MESSAGE, PUBLIC_MESSAGES } from '../../../src/server/error-handler.js';
import { handshakeApp } from '../../support/handshake.js';
import { TOKEN, listen, signedHandshake } from '../../support/helpers.js';

const SECRET = 'observability-secret-0123456789';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** A handshake (mounted for every method, so that a GET reaches it) and a DPoP route, answered by errorHandler(). */
async function app(payload: string | (() => string) = TOKEN) {
  const { app: a } = handshakeApp(
    { secret: SECRET, terminate: true, payload },
    {
      mount: 'use',
      errors: 'errorHandler',
      routes: (app) => app.get('/api/me', tokenSec.dpop({ verifyToken: () => ({ cnf: { jkt: 'x' } }) }), (_req, res) => res.json({})),
    },
  );
  const server = await listen(a);
  servers.push(server);
  return { origin: server.origin, url: `${server.origin}/token` };
}

describe('tokenSec.errorHandler()', () => {
  it('answers a TokenSec error with its status, code, headers and no-store; 5xx messages stay private', async () => {
    const { origin, url } = await app(() => {
      throw new Error('database password is hunter2');
    });
    const get = await fetch(url, { headers: { 'x-tokensec-handshake': 'v3.x' } });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(get.headers.get('cache-control')).toBe('no-store');
    expect(await get.json()).toEqual({ code: 'ERR_TOKENSEC_METHOD_NOT_ALLOWED', message: expect.stringContaining('GET') });

    const api = await fetch(`${origin}/api/me`);
    expect(api.status).toBe(401);
    expect(api.headers.get('www-authenticate')).toMatch(/^DPoP /);
    expect(await api.json()).toMatchObject({ code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });

    const { headers } = await signedHandshake(url, SECRET);
    const failed = await fetch(url, { method: 'POST', headers });
    expect(failed.status).toBe(500);
    const body = await failed.text();
    expect(JSON.parse(body)).toEqual({
      code: 'ERR_TOKENSEC_PAYLOAD_FAILED',
      message: "The handshake's payload function failed: the server's log says why.",
    });
    expect(body).not.toContain('hunter2');
  });

  it("answers the CSRF middleware's EBADCSRFTOKEN with 403, and passes any other error on", async () => {
    const a = express();
    a.use(cookieParser());
    a.use(csurf({ cookie: true }));
    a.post('/form', (_req, res) => res.send('ok'));
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const csrf = await fetch(`${server.origin}/form`, { method: 'POST' });
    expect(csrf.status).toBe(403);
    expect(csrf.headers.get('cache-control')).toBe('no-store');
    // The code stays the CSRF middlewares' own; the message says what to do (theirs says "invalid csrf token").
    expect(await csrf.json()).toEqual({ code: 'EBADCSRFTOKEN', message: CSRF_REFUSED_MESSAGE });
    expect(CSRF_REFUSED_MESSAGE).toMatch(/load a page through initialize\(\)/);
    const other = express();
    other.get('/', () => {
      throw new Error('not ours');
    });
    other.use(tokenSec.errorHandler());
    other.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => res.status(599).send('next'));
    const otherServer = await listen(other);
    servers.push(otherServer);
    const passed = await fetch(`${otherServer.origin}/`);
    expect(passed.status).toBe(599);
    expect(await passed.text()).toBe('next');
  });

  it('checks its options at creation, saying how to fix them', () => {
    expect(() => tokenSec.errorHandler({ verbose: true } as never)).toThrow(/tokenSec\.errorHandler\(\): unknown option "verbose"/);
    expect(() => tokenSec.errorHandler({ logger: console.error } as never)).toThrow(
      'tokenSec.errorHandler(): unknown option "logger". Did you mean "log"? Known options: log.',
    );
    expect(() => tokenSec.errorHandler({ log: 'console' } as never)).toThrow(
      'tokenSec.errorHandler(): option "log" must be a function (text, error) => void or false, got string.',
    );
    expect(() => tokenSec.errorHandler({ log: true } as never)).toThrow(/option "log" must be a function/);
    expect(() => tokenSec.errorHandler({ log: false })).not.toThrow();
  });
});

describe('tokenSec.errorHandler({ log })', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  });

  /** A handshake answered by errorHandler({ log }) that records what is logged. */
  async function loggedApp(options: Parameters<typeof tokenSec.handshake>[0], routes?: (app: express.Express) => void) {
    const logged: { text: string; error: unknown }[] = [];
    const a = express();
    a.post('/token', tokenSec.handshake(options));
    routes?.(a);
    a.use(tokenSec.errorHandler({ log: (text, error) => logged.push({ text, error }) }));
    const server = await listen(a);
    servers.push(server);
    return { logged, url: `${server.origin}/token`, origin: server.origin };
  }

  it("logs a 5xx with its code, the request's method and path, and the app's error below it as the cause", async () => {
    const failure = new Error('database is down', { cause: new Error('ECONNREFUSED 10.0.0.5:5432') });
    const { logged, url } = await loggedApp({
      secret: SECRET,
      dpop: { required: false },
      payload: () => {
        throw failure;
      },
    });
    const { headers } = await signedHandshake(url, SECRET, { dpop: false });
    const response = await fetch(`${url}?next=%2Fhome`, { method: 'POST', headers });
    expect(response.status).toBe(500);
    expect(logged).toHaveLength(1);
    const [{ text, error }] = logged as [{ text: string; error: TokenSecError }];
    expect(text.split('\n')[0]).toBe('tokenSec.errorHandler(): 500 ERR_TOKENSEC_PAYLOAD_FAILED on POST /token');
    expect(text).toContain('TokenSecError: TokenSec payload function threw or rejected.');
    expect(text).toContain('Caused by: Error: database is down\n    at ');
    expect(text).toContain('Caused by: Error: ECONNREFUSED 10.0.0.5:5432');
    expect(text).not.toContain('next='); // no query string
    expect(error).toBeInstanceOf(TokenSecError);
    expect(error.cause).toBe(failure);
  });

  it('never logs a token, proof, secret or payload: a token planted in request headers stays out of the log', async () => {
    const planted = 'eyJhbGciOiJFUzI1NiJ9.PLANTED-TOKEN.c2lnbmF0dXJl';
    const payload = `PLANTED-PAYLOAD-${'x'.repeat(5000)}`;
    const { logged, url } = await loggedApp({ secret: SECRET, dpop: { required: false }, payload, terminate: false });
    const { headers, value } = await signedHandshake(url, SECRET, { dpop: false });
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...headers, authorization: `DPoP ${planted}`, 'x-access-token': planted, cookie: `session=${planted}` },
    });
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({
      code: 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE',
      message: PUBLIC_MESSAGES.ERR_TOKENSEC_PAYLOAD_TOO_LARGE,
    });
    expect(logged).toHaveLength(1);
    const { text } = logged[0]!;
    expect(text).toContain('ERR_TOKENSEC_PAYLOAD_TOO_LARGE');
    expect(text).toMatch(/over headerLimit/); // the developer's fix is in the log
    for (const secret of ['PLANTED', SECRET, value, TOKEN]) expect(text).not.toContain(secret);
  });

  it('logs nothing for a 4xx (the client sent something wrong; the answer says what)', async () => {
    const { logged, url } = await loggedApp({ secret: SECRET, payload: TOKEN });
    const response = await fetch(url, { method: 'POST', headers: { 'x-tokensec-handshake': 'v3.x' } });
    expect(response.status).toBe(400);
    expect(logged).toEqual([]);
  });

  it('a cause that is not an Error is named by its type only; a cycle of causes ends', async () => {
    const cyclic = new Error('first');
    cyclic.cause = new Error('second', { cause: cyclic });
    const { logged, origin } = await loggedApp({ secret: SECRET, payload: TOKEN }, (a) => {
      a.get('/string', (_req, _res, next) => next(new TokenSecError('ERR_TOKENSEC_STORE_UNAVAILABLE', 'down', 503, { cause: 'PLANTED' })));
      a.get('/cycle', (_req, _res, next) => next(new TokenSecError('ERR_TOKENSEC_STORE_UNAVAILABLE', 'down', 503, { cause: cyclic })));
    });
    expect((await fetch(`${origin}/string`)).status).toBe(503);
    expect(logged[0]?.text).toContain('Caused by: a thrown string, not an Error');
    expect(logged[0]?.text).not.toContain('PLANTED');
    expect((await fetch(`${origin}/cycle`)).status).toBe(503);
    expect(logged[1]?.text.match(/Caused by: /g)).toHaveLength(2);
  });

  it("without a session middleware, csrf-sync's TypeError is logged with its real cause and the fix", async () => {
    const logged: string[] = [];
    const a = express();
    a.use(csrfSync().csrfSynchronisedProtection); // no express-session before it
    a.use(tokenSec.initialize({ cookie: true }));
    a.post('/', (_req, res) => res.send('page'));
    a.use(tokenSec.errorHandler({ log: (text) => logged.push(text) }));
    a.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => res.status(500).end());
    const server = await listen(a);
    servers.push(server);
    // initialize() itself serves pages without a session (and warns); csrf-sync's check of a POST throws.
    expect((await fetch(`${server.origin}/`, { method: 'POST' })).status).toBe(500);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('tokenSec.errorHandler(): POST / failed.');
    expect(logged[0]).toContain(
      '(req.session is undefined): mount a session middleware (express-session) before the CSRF middleware and initialize().',
    );
    expect(logged[0]).toContain("TypeError: Cannot read properties of undefined (reading 'csrfToken')");
  });

  it("by default logs to console.error, except when NODE_ENV is 'production' or 'test'", async () => {
    const printed: unknown[] = [];
    vi.spyOn(console, 'error').mockImplementation((text: unknown) => printed.push(text));
    const handlers: [string, ReturnType<typeof tokenSec.errorHandler>][] = [];
    for (const env of ['development', 'production', 'test', '']) {
      vi.stubEnv('NODE_ENV', env);
      handlers.push([env, tokenSec.errorHandler()]);
    }
    const a = express();
    for (const [env, handler] of handlers) {
      a.get(`/${env}`, (_req, _res, next) => next(new TokenSecError('ERR_TOKENSEC_STORE_UNAVAILABLE', `down in ${env || 'unset'}`, 503)));
      a.use(`/${env}`, handler);
    }
    const server = await listen(a);
    servers.push(server);
    for (const [env] of handlers) expect((await fetch(`${server.origin}/${env}`)).status).toBe(503);
    expect(printed).toHaveLength(2);
    expect(printed[0]).toContain('TokenSecError: down in development');
    expect(printed[1]).toContain('TokenSecError: down in unset');
  });

  it.each<[string, ErrorHandlerOptions]>([['false', { log: false }]])('log: %s logs nothing', async (_, options) => {
    const printed: unknown[] = [];
    vi.stubEnv('NODE_ENV', 'development');
    vi.spyOn(console, 'error').mockImplementation((text: unknown) => printed.push(text));
    const a = express();
    a.get('/', (_req, _res, next) => next(new TokenSecError('ERR_TOKENSEC_STORE_UNAVAILABLE', 'down', 503)));
    a.use(tokenSec.errorHandler(options));
    const server = await listen(a);
    servers.push(server);
    expect((await fetch(`${server.origin}/`)).status).toBe(503);
    expect(printed).toEqual([]);
  });
});
