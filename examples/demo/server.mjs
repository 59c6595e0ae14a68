// TokenSec demo: `npm start`, then open the printed URL.
//
// Log in (session cookie, HttpOnly) -> CSRF token (csrf-sync, handed to the page by
// tokenSec.initialize) -> TokenSec.handshake() fetches a short-lived JWT minted per user with
// jose -> the page calls a protected API with `Authorization: Bearer` -> it refreshes the token
// before expiry -> log out, after which the handshake and the API refuse.
//
// It imports TokenSec by package name, as an application would. No external service is needed.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import session from 'express-session';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import tokenSec from 'tokensec';

export const DEMO_USER = { username: 'demo', password: 'tokensec-demo' };
const ISSUER = 'tokensec-demo';
const AUDIENCE = 'tokensec-demo-api';

// A strict policy: scripts and styles only from this origin, no inline code, no eval.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const sameText = (a, b) => {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
};

/** The demo app. `tokenTtl`: JWT lifetime in seconds (short by default: this is an access token). */
export function createDemoApp({ tokenTtl = Number(process.env.TOKEN_TTL ?? 60) } = {}) {
  const jwtKey = randomBytes(32); // HS256 key, new each start: tokens do not outlive the process
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(express.json());
  app.use(
    session({
      name: 'demo.sid',
      secret: randomBytes(32).toString('hex'),
      resave: false,
      saveUninitialized: true,
      cookie: { httpOnly: true, sameSite: 'strict', path: '/' },
    }),
  );
  app.use(csrfSync().csrfSynchronisedProtection); // checks x-csrf-token on POST
  app.use(tokenSec.initialize({ cookie: true })); // hands the CSRF token to the page
  app.get('/tokensec.js', tokenSec.client());
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.use(express.static(fileURLToPath(new URL('./public/', import.meta.url))));

  app.get('/api/session', (req, res) => {
    res.set('Cache-Control', 'no-store').json({ user: req.session.user ?? null, tokenTtl });
  });

  app.post('/login', (req, res, next) => {
    const { username, password } = req.body ?? {};
    if (!sameText(username, DEMO_USER.username) || !sameText(password, DEMO_USER.password)) {
      res.status(401).json({ code: 'BAD_CREDENTIALS', message: 'Wrong user name or password.' });
      return;
    }
    // A new session on login (no fixation); it gets a new CSRF token on the next request.
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = DEMO_USER.username;
      res.json({ user: req.session.user });
    });
  });

  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => {
      if (err) return next(err);
      res.clearCookie('demo.sid', { path: '/' }).clearCookie('tokensec', { path: '/' }).json({ user: null });
    });
  });

  const requireUser = (req, res, next) => {
    if (req.session.user) next();
    else res.status(401).json({ code: 'NOT_LOGGED_IN', message: 'Log in first.' });
  };

  // The handshake: only for a logged-in user, after csrf-sync has checked the CSRF token.
  app.post(
    '/api/token',
    requireUser,
    tokenSec.handshake({
      payload: (req) =>
        new SignJWT({ name: 'Demo User', scope: 'profile:read' })
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
          .setSubject(req.session.user)
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setIssuedAt()
          .setJti(randomBytes(8).toString('hex'))
          .setExpirationTime(`${tokenTtl}s`)
          .sign(jwtKey),
      terminate: true,
    }),
  );

  // The protected API: a valid, unexpired token, for the user of this session.
  app.get('/api/me', async (req, res) => {
    const match = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '');
    if (!match) {
      res.status(401).json({ error: 'missing_token', message: 'Send Authorization: Bearer <token>.' });
      return;
    }
    try {
      const { payload } = await jwtVerify(match[1], jwtKey, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] });
      if (payload.sub !== req.session.user) {
        res.status(401).json({ error: 'session_ended', message: 'The session this token was issued to has ended.' });
        return;
      }
      res.set('Cache-Control', 'no-store').json({ claims: payload, message: `Hello ${payload.name}, this came from a protected API.` });
    } catch (error) {
      const expired = error instanceof joseErrors.JWTExpired;
      res.status(401).json({
        error: expired ? 'token_expired' : 'invalid_token',
        message: expired ? 'The token has expired.' : 'The token is not valid.',
      });
    }
  });

  // Errors from TokenSec (TokenSecError) and csrf-sync (EBADCSRFTOKEN) carry status and code.
  app.use((err, _req, res, _next) => {
    const status = err.status ?? err.statusCode ?? 500;
    res.status(status).json({ code: err.code ?? 'INTERNAL', message: status < 500 ? err.message : 'Internal error.' });
  });
  return app;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 3000);
  const app = createDemoApp();
  app.listen(port, '127.0.0.1', () => {
    console.log(`TokenSec demo: http://127.0.0.1:${port}/`);
    console.log(`Log in as "${DEMO_USER.username}" with password "${DEMO_USER.password}".`);
    console.log('(127.0.0.1 is a secure context, so Web Crypto works without HTTPS. Ctrl-C to stop.)');
  });
}
