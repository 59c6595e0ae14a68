/**
 * The support table in README.md, row by row: the same middlewares mounted in each framework, a
 * listening server on 127.0.0.1, and the browser client (run in Node) doing what a page does: a
 * handshake (answered; and refused with its status when the secret is wrong), then an API call
 * with the DPoP-bound token and a proof, through tokenSec.dpop().
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fastifyExpress from '@fastify/express';
import middie from '@fastify/middie';
import connect from 'connect';
import express5 from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import restify from 'restify';
import { describe, expect, it } from 'vitest';
import { createDpopProof, handshake } from '../../client/index.js';
import tokenSec from '../../src/index.js';

const SECRET = 'frameworks-secret-0123456789';
type Next = (err?: unknown) => void;
type Handler = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/** The token names the key it is bound to; verifyToken reads it back (the test's stand-in for a JWT). */
const mintToken = (jkt: string | undefined) => `token-for.${jkt}`;
const verifyToken = (token: string) => {
  if (!token.startsWith('token-for.')) throw new Error('not ours');
  return { cnf: { jkt: token.slice('token-for.'.length) } };
};

const handshakeMiddleware = () =>
  tokenSec.handshake({ secret: SECRET, terminate: true, payload: (_req, _res, { jkt }) => mintToken(jkt) }) as Handler;
const dpopMiddleware = () => tokenSec.dpop({ verifyToken }) as Handler;
/** What the API answers once tokenSec.dpop() let the call through. */
const answer = (_req: IncomingMessage, res: ServerResponse) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ ok: true }));
};
/** For frameworks without an error handler of their own: status and code as JSON. */
const sendError = (res: ServerResponse, err: unknown) => {
  const { status = 500, code } = err as { status?: number; code?: string };
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ code }));
};

async function listening(server: ReturnType<typeof createServer>): Promise<{ origin: string; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Fastify with an Express-compatibility plugin (@fastify/express or @fastify/middie), which gives it `use()`. */
async function fastifyWith(plugin: typeof fastifyExpress | typeof middie) {
  const fastify = Fastify();
  await fastify.register(plugin);
  fastify.use('/token', handshakeMiddleware());
  fastify.use('/api/me', dpopMiddleware());
  fastify.get('/api/me', async () => ({ ok: true }));
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const { port } = fastify.server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => fastify.close() };
}

type Start = () => Promise<{ origin: string; close: () => Promise<void> }>;

const frameworks: [string, Start][] = [
  [
    'Express 4',
    () => {
      const app = express4();
      app.post('/token', handshakeMiddleware());
      app.get('/api/me', dpopMiddleware(), answer);
      app.use(tokenSec.errorHandler());
      return listening(createServer(app));
    },
  ],
  [
    'Express 5',
    () => {
      const app = express5();
      app.post('/token', handshakeMiddleware());
      app.get('/api/me', dpopMiddleware(), answer);
      app.use(tokenSec.errorHandler());
      return listening(createServer(app));
    },
  ],
  [
    'Connect',
    () => {
      const app = connect();
      // Connect mounts by prefix and strips it from req.url; TokenSec binds req.originalUrl.
      app.use('/token', handshakeMiddleware());
      app.use('/api/me', dpopMiddleware());
      app.use('/api/me', answer);
      app.use(tokenSec.errorHandler());
      return listening(createServer(app));
    },
  ],
  ['Fastify with @fastify/express', () => fastifyWith(fastifyExpress)],
  ['Fastify with @fastify/middie', () => fastifyWith(middie)],
  [
    'Restify 11',
    async () => {
      const server = restify.createServer();
      // Restify takes the middlewares as they are: errors passed to next(err) answer with their statusCode.
      server.post('/token', handshakeMiddleware() as restify.RequestHandler);
      server.get(
        '/api/me',
        dpopMiddleware() as restify.RequestHandler,
        (req: restify.Request, res: restify.Response, next: restify.Next) => {
          answer(req, res);
          next();
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address();
      return { origin: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    },
  ],
  [
    'node:http',
    () => {
      const token = handshakeMiddleware();
      const api = dpopMiddleware();
      return listening(
        createServer((req, res) => {
          const done: Next = (err) => (err ? sendError(res, err) : undefined);
          if (req.url === '/token') token(req, res, (err) => (err ? sendError(res, err) : sendError(res, { status: 404 })));
          else if (req.url === '/api/me') api(req, res, (err) => (err ? done(err) : answer(req, res)));
          else sendError(res, { status: 404 });
        }),
      );
    },
  ],
];

describe.each(frameworks)('%s', (_name, start) => {
  it('answers a handshake, refuses a wrong secret with 403, and lets the bound token through tokenSec.dpop()', async () => {
    const { origin, close } = await start();
    try {
      const token = await handshake({ uri: `${origin}/token`, secret: SECRET });
      expect(token).toMatch(/^token-for\.[\w-]{43}$/);
      const refused = await handshake({ uri: `${origin}/token`, secret: 'a-wrong-secret-0123456789' }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'ERR_TOKENSEC_SECRET_MISMATCH', status: 403 });

      const url = `${origin}/api/me`;
      const ok = await fetch(url, {
        headers: { authorization: `DPoP ${token}`, dpop: await createDpopProof({ method: 'GET', url, accessToken: token }) },
      });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ ok: true });
      const bearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(bearer.status).toBe(401);
    } finally {
      await close();
    }
  });
});
