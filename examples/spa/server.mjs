// TokenSec SPA example: a Preact app built with Vite, and an API on another origin.
//
//   npm run build && node examples/spa/server.mjs    (or: npm run start:spa)
//
// The app server (http://127.0.0.1:5173) serves the built SPA, logs users in (session cookie,
// csrf-sync) and answers the TokenSec handshake on POST /token with a JWT bound to the page's DPoP
// key. The API (http://localhost:5174, another origin) accepts that token only with a proof of the
// same key (tokenSec.dpop(), with server nonces), through CORS. Both pages and scripts run under a
// strict Content Security Policy: the Vite build has no inline script.
//
// It imports TokenSec by package name, as an application would.

import { createServer } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import cors from 'cors';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import session from 'express-session';
import { SignJWT, generateKeyPair, jwtVerify } from 'jose';
import tokenSec from 'tokensec';
import { build } from 'vite';

export const DEMO_USER = { username: 'demo', password: 'tokensec-demo' };
const ROOT = fileURLToPath(new URL('.', import.meta.url));

/** Builds the SPA with Vite into `outDir` (default examples/spa/dist). */
export async function buildSpa(outDir = fileURLToPath(new URL('./dist', import.meta.url))) {
  await build({ root: ROOT, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  return outDir;
}

const sameText = (a, b) => {
  const [x, y] = [Buffer.from(String(a)), Buffer.from(String(b))];
  return x.length === y.length && timingSafeEqual(x, y);
};

/** The app server: the SPA's files, login, and the TokenSec handshake. */
function createApp({ dist, apiOrigin, privateKey }) {
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    // Scripts and styles from this origin only; fetch() may reach the API's origin.
    res.setHeader(
      'Content-Security-Policy',
      `default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ${apiOrigin}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'`,
    );
    next();
  });
  app.use(express.json());
  app.use(
    session({
      name: 'spa.sid',
      secret: randomBytes(32).toString('hex'),
      resave: false,
      saveUninitialized: true,
      cookie: { httpOnly: true, sameSite: 'strict' },
    }),
  );
  app.use(csrfSync().csrfSynchronisedProtection); // checks x-csrf-token on POST
  app.use(tokenSec.initialize({ cookie: true })); // hands the CSRF token to the page (`tokensec` cookie)

  app.get('/config.json', (_req, res) => res.json({ apiOrigin }));
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.get('/session', (req, res) => res.set('Cache-Control', 'no-store').json({ user: req.session.user ?? null }));
  app.post('/login', (req, res, next) => {
    const { username, password } = req.body ?? {};
    if (!sameText(username, DEMO_USER.username) || !sameText(password, DEMO_USER.password)) {
      res.status(401).json({ code: 'BAD_CREDENTIALS' });
      return;
    }
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = DEMO_USER.username;
      res.json({ user: req.session.user });
    });
  });
  // A new, empty session: the old one (and its DPoP key binding) is destroyed; the answer carries the new session's CSRF token.
  app.post('/logout', (req, res, next) => req.session.regenerate((err) => (err ? next(err) : res.json({ user: null }))));

  // The handshake: for a logged-in user; the token is for the API (aud) and bound to the page's key (cnf.jkt).
  app.post(
    '/token',
    (req, res, next) => (req.session.user ? next() : res.status(401).json({ code: 'NOT_LOGGED_IN' })),
    tokenSec.handshake({
      payload: (req, _res, { jkt }) =>
        new SignJWT({ cnf: { jkt } })
          .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
          .setSubject(req.session.user)
          .setAudience(apiOrigin)
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(privateKey),
      terminate: true,
    }),
  );
  app.use(express.static(dist));
  app.use(tokenSec.errorHandler());
  return app;
}

/** The API, on another origin: CORS for the app's origin, every route behind tokenSec.dpop(). */
function createApi({ appOrigin, apiOrigin, publicKey }) {
  const api = express();
  api.disable('x-powered-by');
  api.use(
    cors({
      origin: appOrigin,
      credentials: true,
      allowedHeaders: ['authorization', 'dpop', 'content-type'],
      // The session reads WWW-Authenticate and DPoP-Nonce to answer a nonce challenge.
      exposedHeaders: ['www-authenticate', 'dpop-nonce', 'tokensec-error', 'date'],
    }),
  );
  api.use(
    tokenSec.dpop({
      nonce: true,
      verifyToken: async (token) => (await jwtVerify(token, publicKey, { audience: apiOrigin, algorithms: ['ES256'] })).payload,
    }),
  );
  api.get('/hello', (req, res) =>
    res.set('Cache-Control', 'no-store').json({ message: `Hello ${req.tokenSec.claims.sub}, from the API.` }),
  );
  api.use(tokenSec.errorHandler());
  return api;
}

const listen = (server, port) => new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server.address().port)));

/**
 * Starts the app server and the API on 127.0.0.1. `apiHost`: the name the page uses for the API
 * (another origin than the page's). Resolves with both origins and `close()`.
 */
export async function startSpa({
  dist = fileURLToPath(new URL('./dist', import.meta.url)),
  port = 0,
  apiPort = 0,
  apiHost = 'localhost',
} = {}) {
  const { privateKey, publicKey } = await generateKeyPair('ES256'); // the token-signing key pair
  const [appServer, apiServer] = [createServer(), createServer()];
  const appOrigin = `http://127.0.0.1:${await listen(appServer, port)}`;
  const apiOrigin = `http://${apiHost}:${await listen(apiServer, apiPort)}`;
  appServer.on('request', createApp({ dist, apiOrigin, privateKey }));
  apiServer.on('request', createApi({ appOrigin, apiOrigin, publicKey }));
  const close = () => Promise.all([appServer, apiServer].map((s) => new Promise((resolve) => s.close(resolve))));
  return { appOrigin, apiOrigin, close };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildSpa();
  const { appOrigin, apiOrigin } = await startSpa({
    port: Number(process.env.PORT ?? 5173),
    apiPort: Number(process.env.API_PORT ?? 5174),
  });
  console.log(`SPA on ${appOrigin}/ (log in as ${DEMO_USER.username} / ${DEMO_USER.password}), API on ${apiOrigin}`);
}
