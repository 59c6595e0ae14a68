import { randomBytes } from 'node:crypto';
import fastifyExpress from '@fastify/express';
import { csrfSync } from 'csrf-sync';
import session from 'express-session';
import Fastify from 'fastify';
import { SignJWT, jwtVerify } from 'jose';
import tokenSec from 'tokensec';

const jwtKey = randomBytes(32); // this example signs HS256 tokens; use your token-signing key
const fastify = Fastify();
await fastify.register(fastifyExpress); // fastify.use() for Express-style middlewares
fastify.use(session({ secret: randomBytes(32).toString('hex'), resave: false, saveUninitialized: true, cookie: { sameSite: 'strict' } }));
fastify.use(csrfSync().csrfSynchronisedProtection); // checks x-csrf-token on POST
fastify.use(tokenSec.initialize({ cookie: true })); // CSRF token -> `tokensec` cookie
fastify.use('/tokensec.js', tokenSec.client()); // the browser client, for <script src="/tokensec.js">

fastify.post('/login', (request, reply) => {
  if (request.body?.user !== 'alice') return reply.code(401).send(); // check real credentials here
  request.raw.session.regenerate((error) => {
    if (error) return reply.send(error);
    request.raw.session.userId = 'alice';
    reply.send({ user: 'alice' });
  });
  return reply;
});
fastify.get('/me', (request) => ({ user: request.raw.session.userId ?? null }));

fastify.use('/token', (req, res, next) =>
  req.session.userId ? next() : next(Object.assign(new Error('Log in first'), { statusCode: 401 })),
);
fastify.use(
  '/token',
  tokenSec.handshake({
    payload: (req, res, { jkt }) =>
      new SignJWT({ sub: req.session.userId, cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(jwtKey),
    terminate: true,
  }),
);
// API routes: Authorization: DPoP <token> plus a proof of the same key. Fastify answers refusals with their status and headers.
fastify.use('/api', tokenSec.dpop({ verifyToken: async (token) => (await jwtVerify(token, jwtKey)).payload }));
fastify.get('/api/me', (request) => ({ user: request.raw.tokenSec.claims.sub }));

export default fastify; // await fastify.listen({ port: 3000 })
