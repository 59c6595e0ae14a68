// TokenSec demo: `npm start`, then open the printed URL.
//
// Log in (session cookie, HttpOnly) -> CSRF token (csrf-sync, handed to the page by
// tokenSec.initialize) -> TokenSec.session() runs the handshake, which fetches a short-lived JWT
// minted per user with jose and bound to the page's DPoP key (cnf.jkt) -> session.fetch() calls a
// protected API with `Authorization: DPoP` and a proof -> the session refreshes the token before
// expiry -> log out, after which the handshake and the API refuse. A token copied from a log is
// useless without the key.
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
  app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));
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

  // Logout unbinds the session from the page's DPoP key on the server (tokenSec.unbind), so the
  // next login's handshake binds a fresh key; destroying the session would unbind it too.
  app.post('/logout', async (req, res, next) => {
    try {
      await tokenSec.unbind(req);
    } catch (err) {
      return next(err);
    }
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
      // jkt: the thumbprint of the browser's DPoP key, verified by the handshake. cnf.jkt binds
      // the token to it (RFC 9449 §6), so only that key's proofs make it usable.
      payload: (req, _res, { jkt }) =>
        new SignJWT({ name: 'Demo User', scope: 'profile:read', cnf: { jkt } })
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

  // The protected API: a DPoP proof of the page's key, and a valid, unexpired token bound to
  // that key (cnf.jkt), for the user of this session. tokenSec.dpop checks the proof and the
  // binding; verifying the token itself is the app's, with jose.
  class SessionEnded extends Error {}
  app.get(
    '/api/me',
    tokenSec.dpop({
      verifyToken: async (token, req) => {
        const { payload } = await jwtVerify(token, jwtKey, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] });
        if (payload.sub !== req.session.user) throw new SessionEnded();
        return payload;
      },
    }),
    (req, res) => {
      const { claims } = req.tokenSec;
      res.set('Cache-Control', 'no-store').json({ claims, message: `Hello ${claims.name}, this came from a protected API.` });
    },
  );

  // Why a token was refused, for the page: the cause tokenSec.dpop keeps on its error.
  const tokenError = (err) => {
    if (err.cause instanceof joseErrors.JWTExpired) return { error: 'token_expired', message: 'The token has expired.' };
    if (err.cause instanceof SessionEnded) return { error: 'session_ended', message: 'The session this token was issued to has ended.' };
    if (err.code?.startsWith('ERR_TOKENSEC_DPOP_')) return { error: err.dpopError ?? 'invalid_token', message: err.message };
    return {};
  };

  // Errors from TokenSec (TokenSecError) and csrf-sync (EBADCSRFTOKEN) carry status and code;
  // TokenSec's DPoP refusals also carry headers (WWW-Authenticate), which a handler must send.
  app.use((err, _req, res, _next) => {
    const status = err.status ?? err.statusCode ?? 500;
    if (err.headers) res.set(err.headers);
    res.status(status).json({ code: err.code ?? 'INTERNAL', message: status < 500 ? err.message : 'Internal error.', ...tokenError(err) });
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
