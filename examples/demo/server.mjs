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
//
// `npm run start:https` (or `node examples/demo/server.mjs --https`) serves it over HTTPS with a
// throwaway self-signed certificate and turns on Device Bound Session Credentials (DBSC): in a
// Chromium started with the flags it prints, the page shows "device bound".
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const sameText = (a, b) => {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * The demo app. `tokenTtl`: JWT lifetime in seconds (short by default: this is an access token).
 * `dbsc`: serve it over HTTPS and bind sessions to the device in browsers with DBSC.
 */
export function createDemoApp({ tokenTtl = Number(process.env.TOKEN_TTL ?? 60), dbsc: deviceBound = false } = {}) {
  const jwtKey = randomBytes(32); // HS256 key, new each start: tokens do not outlive the process
  // DBSC: a short-lived cookie that only this browser's key can renew (its lifetime: DBSC_COOKIE_MAX_AGE seconds).
  const dbsc = deviceBound
    ? tokenSec.dbsc({ secret: randomBytes(32), cookieMaxAge: Number(process.env.DBSC_COOKIE_MAX_AGE ?? 120) })
    : undefined;
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
      cookie: { httpOnly: true, sameSite: 'strict', path: '/', secure: deviceBound },
    }),
  );
  if (dbsc) app.use(dbsc.middleware); // DBSC registration and refresh, before csrf-sync: they carry no CSRF token
  app.use(csrfSync().csrfSynchronisedProtection); // checks x-csrf-token on POST
  app.use(tokenSec.initialize({ cookie: true })); // hands the CSRF token to the page
  app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.use(express.static(fileURLToPath(new URL('./public/', import.meta.url))));

  app.get('/api/session', (req, res) => {
    // dbsc: "off" (plain http), "bound" (this browser registered a DBSC key), "not-bound" (it did not: no DBSC)
    const dbscState = !dbsc ? 'off' : req.session.tokenSecDbsc?.id ? 'bound' : 'not-bound';
    res.set('Cache-Control', 'no-store').json({ user: req.session.user ?? null, tokenTtl, dbsc: dbscState });
  });

  app.post('/login', (req, res, next) => {
    const { username, password } = req.body ?? {};
    if (!sameText(username, DEMO_USER.username) || !sameText(password, DEMO_USER.password)) {
      res.status(401).json({ code: 'BAD_CREDENTIALS', message: 'Wrong user name or password.' });
      return;
    }
    // A new session on login (no fixation); the answer carries its CSRF token (tokenSec.initialize).
    req.session.regenerate(async (err) => {
      if (err) return next(err);
      req.session.user = DEMO_USER.username;
      // Login-time binding: the thumbprint of the key the page made for this login. Every
      // handshake of this session must prove that key (naming a key one does not hold only
      // locks oneself out); without it, the first handshake binds a key made for it.
      const { jkt } = req.body;
      if (typeof jkt === 'string' && /^[\w-]{43}$/.test(jkt)) req.session.tokenSecJkt = jkt;
      try {
        if (dbsc) await dbsc.requestRegistration(req, res); // browsers with DBSC register a key next
        res.json({ user: req.session.user, dbsc: dbsc ? 'not-bound' : 'off' });
      } catch (error) {
        next(error);
      }
    });
  });

  // Logout: a new, empty session. The old one is destroyed, and with it its DPoP key binding (the
  // next login's handshake binds a fresh key) and its DBSC state; the answer carries the new
  // session's CSRF token, which the next login sends.
  app.post('/logout', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      res.json({ user: null });
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

/** A throwaway self-signed certificate for localhost (openssl), and its SPKI hash for Chromium's pin. */
export function demoCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'tokensec-demo-'));
  const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '7',
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  const pem = readFileSync(cert, 'utf8');
  const spki = createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  return { key: readFileSync(key, 'utf8'), cert: pem, spki };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--https')) {
  const port = Number(process.env.PORT ?? 3443);
  const tls = demoCertificate();
  createServer({ key: tls.key, cert: tls.cert }, createDemoApp({ dbsc: true })).listen(port, '127.0.0.1', () => {
    console.log(`TokenSec demo with DBSC: https://localhost:${port}/`);
    console.log(`Log in as "${DEMO_USER.username}" with password "${DEMO_USER.password}".`);
    console.log('Open it in a Chromium started with (software DBSC keys; this certificate trusted by its key hash):');
    console.log(
      `  chromium --user-data-dir=$(mktemp -d) --enable-features=DeviceBoundSessions:RequireOriginTrialTokens/false/RefreshQuota/false,EnableBoundSessionCredentialsSoftwareKeysForManualTesting --ignore-certificate-errors-spki-list=${tls.spki} https://localhost:${port}/`,
    );
    console.log('Other browsers work as before and show "not device bound". Ctrl-C to stop.');
  });
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 3000);
  const app = createDemoApp();
  app.listen(port, '127.0.0.1', () => {
    console.log(`TokenSec demo: http://127.0.0.1:${port}/`);
    console.log(`Log in as "${DEMO_USER.username}" with password "${DEMO_USER.password}".`);
    console.log('(127.0.0.1 is a secure context, so Web Crypto works without HTTPS. Ctrl-C to stop.)');
  });
}
