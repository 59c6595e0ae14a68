/**
 * tokenSec.dbsc() in each framework of README's support table (the setups of frameworks.test.ts):
 * express-session, dbsc.middleware, a login that asks for registration, a route behind
 * dbsc.requireBoundSession and the handshake, on a listening server on 127.0.0.1. Over real HTTP,
 * with proofs signed by a P-256 key from CSPRNG bytes: registration, a refresh (403 with a
 * challenge, then signed), the bound cookie required on the route, and the handshake refused
 * without a live bound cookie (taken out of the jar, or expired in a copied jar).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fastifyExpress from '@fastify/express';
import middie from '@fastify/middie';
import connect from 'connect';
import express5 from 'express';
import express4 from 'express4';
import session from 'express-session';
import Fastify from 'fastify';
import restify from 'restify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeClock } from '../support/clock.js';
import { handshake } from '../../client/index.js';
import tokenSec from '../../src/index.js';
import { challengeOf, Client, dbscProof, ecTestKey, registrationProof, registrationRequest } from '../support/dbsc.js';

const DBSC_SECRET = 'dbsc frameworks secret, 32 bytes or more';
const HANDSHAKE_SECRET = 'a handshake secret of 16+ bytes';
const REGISTRATION = '/tokensec/dbsc/registration';
const REFRESH = '/tokensec/dbsc/refresh';
const BOUND = '__Host-tokensec-dbsc';
const MAX_AGE = 60;

type Next = (err?: unknown) => void;
type Handler = (req: IncomingMessage, res: ServerResponse, next: Next) => void;
type Server = { origin: string; close: () => Promise<void> };
type SessionRequest = IncomingMessage & { session: session.Session & { userId?: string } };

const json = (res: ServerResponse, body: unknown) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
};

/** The same pieces for every framework; the test moves the clock (test/support/clock.ts). */
function parts() {
  const dbsc = tokenSec.dbsc({ secret: DBSC_SECRET, cookieMaxAge: MAX_AGE });
  const login: Handler = (req, res, next) => {
    const { session: current } = req as SessionRequest;
    current.regenerate((error) => {
      if (error) return next(error);
      (req as SessionRequest).session.userId = 'alice';
      dbsc.requestRegistration(req, res).then((requested) => json(res, { requested }), next);
    });
  };
  return {
    session: session({ secret: 'frameworks session secret', resave: false, saveUninitialized: false }) as Handler,
    dbsc: dbsc.middleware as Handler,
    requireBoundSession: dbsc.requireBoundSession as Handler,
    login,
    requestRegistration: dbsc.requestRegistration,
    account: (_req: IncomingMessage, res: ServerResponse) => json(res, { ok: true }),
    token: tokenSec.handshake({ payload: 'the token', secret: HANDSHAKE_SECRET, terminate: true }) as Handler,
  };
}
type Parts = ReturnType<typeof parts>;

async function listening(server: ReturnType<typeof createServer>): Promise<Server> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Fastify with @fastify/express or @fastify/middie: express-session and dbsc.middleware through use(). */
async function fastifyWith(plugin: typeof fastifyExpress | typeof middie, p: Parts): Promise<Server> {
  const fastify = Fastify();
  await fastify.register(plugin);
  fastify.use(p.session);
  fastify.use(p.dbsc);
  fastify.use('/account', p.requireBoundSession);
  fastify.use('/token', p.token);
  // The login as a Fastify route: the session and the DBSC header are on the raw request and response.
  fastify.post('/login', async (request, reply) => {
    const req = request.raw as SessionRequest;
    await new Promise<void>((resolve, reject) => req.session.regenerate((error) => (error ? reject(error) : resolve())));
    (req as SessionRequest).session.userId = 'alice';
    return { requested: await p.requestRegistration(req, reply.raw) };
  });
  fastify.get('/account', async () => ({ ok: true }));
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const { port } = fastify.server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => fastify.close() };
}

const frameworks: [string, (p: Parts) => Promise<Server>][] = [
  [
    'Express 5',
    (p) => {
      const app = express5();
      app.use(p.session);
      app.use(p.dbsc); // after the session, before any CSRF middleware
      app.post('/login', p.login);
      app.get('/account', p.requireBoundSession, p.account);
      app.post('/token', p.token);
      app.use(tokenSec.errorHandler());
      return listening(createServer(app));
    },
  ],
  [
    'Express 4',
    (p) => {
      const app = express4();
      app.use(p.session);
      app.use(p.dbsc);
      app.post('/login', p.login);
      app.get('/account', p.requireBoundSession, p.account);
      app.post('/token', p.token);
      app.use(tokenSec.errorHandler());
      return listening(createServer(app));
    },
  ],
  [
    'Connect',
    (p) => {
      const app = connect();
      app.use(p.session);
      app.use(p.dbsc);
      app.use('/login', p.login);
      app.use('/account', p.requireBoundSession);
      app.use('/account', p.account);
      app.use('/token', p.token);
      app.use(tokenSec.errorHandler());
      return listening(createServer(app));
    },
  ],
  ['Fastify with @fastify/express', (p) => fastifyWith(fastifyExpress, p)],
  ['Fastify with @fastify/middie', (p) => fastifyWith(middie, p)],
  [
    'Restify 11',
    async (p) => {
      const server = restify.createServer();
      // Restify runs use() only for the routes it has: the session and DBSC go in pre(), which runs first.
      server.pre(p.session as restify.RequestHandler);
      server.pre(p.dbsc as restify.RequestHandler);
      server.post('/login', p.login as restify.RequestHandler);
      server.get(
        '/account',
        p.requireBoundSession as restify.RequestHandler,
        (req: restify.Request, res: restify.Response, next: restify.Next) => {
          p.account(req, res);
          next();
        },
      );
      server.post('/token', p.token as restify.RequestHandler);
      // Restify answers an error with its statusCode but not its headers (the refresh's 403 carries the
      // challenge in one): set them, as tokenSec.errorHandler() does in Express.
      server.on(
        'restifyError',
        (_req: restify.Request, res: restify.Response, err: { headers?: Record<string, string> }, done: () => void) => {
          for (const [name, value] of Object.entries(err.headers ?? {})) res.setHeader(name, value);
          done();
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address();
      const close = () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.server.closeAllConnections(); // all answered; Restify's close() would wait for keep-alive ones
        });
      return { origin: `http://127.0.0.1:${port}`, close };
    },
  ],
];

const tokenWith = (origin: string, cookie: string) => handshake({ uri: `${origin}/token`, secret: HANDSHAKE_SECRET, headers: { cookie } });

afterEach(() => {
  vi.useRealTimers();
});

describe.each(frameworks)('%s', (_name, start) => {
  it('registers, refreshes (403 with a challenge, then signed), requires the bound cookie, refuses the handshake without it', async () => {
    const clock = fakeClock(Date.now());
    const { origin, close } = await start(parts());
    try {
      const client = new Client(origin);
      const login = await client.send('POST', '/login');
      expect([login.status, await login.json()]).toEqual([200, { requested: true }]);
      const request = registrationRequest(login.headers.get('secure-session-registration'));
      expect(request).toMatchObject({ algorithms: 'ES256 RS256', path: REGISTRATION });
      // Not registered yet (a browser without DBSC): the route and the handshake answer as before.
      expect((await client.send('GET', '/account')).status).toBe(200);

      const key = ecTestKey();
      const proof = registrationProof(key, { jti: request.challenge });
      const registered = await client.send('POST', REGISTRATION, { 'secure-session-response': proof });
      expect(registered.status).toBe(200);
      const instructions = (await registered.json()) as { session_identifier: string };
      expect(instructions).toMatchObject({ refresh_url: REFRESH, credentials: [{ type: 'cookie', name: BOUND }] });
      const { id } = challengeOf(registered);
      expect(id).toBe(instructions.session_identifier);
      expect(registered.headers.getSetCookie().find((c) => c.startsWith(`${BOUND}=`))).toMatch(
        new RegExp(`^${BOUND}=\\d+\\.[A-Za-z0-9_-]{43}; Max-Age=${MAX_AGE}; Path=/; Secure; HttpOnly; SameSite=Lax$`),
      );
      const replayed = await client.send('POST', REGISTRATION, { 'secure-session-response': proof });
      expect([replayed.status, replayed.headers.get('tokensec-error')]).toEqual([409, 'ERR_TOKENSEC_DBSC_ALREADY_REGISTERED']);
      const get = await fetch(origin + REFRESH);
      expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);

      // Bound, with a live bound cookie: the route and the handshake answer.
      expect((await client.send('GET', '/account')).status).toBe(200);
      expect(await tokenWith(origin, client.cookie)).toBe('the token');
      const copiedJar = client.cookie;

      // The same session without the bound cookie: 401 on the route and on the handshake.
      const stripped = new Client(origin);
      stripped.cookies = new Map([...client.cookies].filter(([name]) => name !== BOUND));
      const refusedRoute = await stripped.send('GET', '/account');
      expect([refusedRoute.status, refusedRoute.headers.get('tokensec-error')]).toEqual([401, 'ERR_TOKENSEC_DBSC_REQUIRED']);
      expect(await tokenWith(origin, stripped.cookie).catch((e: unknown) => e)).toMatchObject({
        status: 401,
        code: 'ERR_TOKENSEC_DBSC_REQUIRED',
      });

      // The bound cookie expires: the browser refreshes (403 with a fresh challenge, then signed) and goes on.
      clock.advance((MAX_AGE + 1) * 1000);
      // Node's http server keeps its Date header for up to a second of real time, and the handshake
      // client sets its DPoP clock from that header: let it catch up with the moved clock.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect((await client.send('GET', '/account')).status).toBe(401);
      const asked = await client.send('POST', REFRESH, { 'sec-secure-session-id': id });
      expect([asked.status, asked.headers.get('tokensec-error')]).toEqual([403, 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE']);
      const challenge = challengeOf(asked);
      expect(challenge.id).toBe(id);
      const thief = await client.send('POST', REFRESH, {
        'sec-secure-session-id': id,
        'secure-session-response': dbscProof(ecTestKey(), { jti: challenge.challenge }),
      });
      expect([thief.status, thief.headers.get('tokensec-error'), thief.headers.getSetCookie()]).toEqual([
        403,
        'ERR_TOKENSEC_DBSC_INVALID_PROOF',
        [],
      ]);
      const refreshed = await client.send('POST', REFRESH, {
        'sec-secure-session-id': `"${id}"`,
        'secure-session-response': dbscProof(key, { jti: challenge.challenge }),
      });
      expect(refreshed.status).toBe(200);
      expect(challengeOf(refreshed).challenge).not.toBe(challenge.challenge);
      expect((await client.send('GET', '/account')).status).toBe(200);
      expect(await tokenWith(origin, client.cookie)).toBe('the token');

      // The copied jar's bound cookie has expired: the route and the handshake refuse it.
      const copied = await fetch(`${origin}/account`, { headers: { cookie: copiedJar } });
      expect([copied.status, copied.headers.get('tokensec-error')]).toEqual([401, 'ERR_TOKENSEC_DBSC_REQUIRED']);
      expect(await tokenWith(origin, copiedJar).catch((e: unknown) => e)).toMatchObject({
        status: 401,
        code: 'ERR_TOKENSEC_DBSC_REQUIRED',
      });
    } finally {
      await close();
    }
  });
});
