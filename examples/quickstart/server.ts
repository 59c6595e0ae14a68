// TokenSec quick start: `npm run quickstart`, then open the URL it prints.
import express from 'express';
import session from 'express-session';
import { csrfSync } from 'csrf-sync';
import { SignJWT, generateKeyPair, jwtVerify } from 'jose';
import tokenSec from 'tokensec';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}

const PORT = Number(process.env.PORT ?? 3000);
const ORIGIN = process.env.APP_ORIGIN ?? `http://127.0.0.1:${PORT}`; // the origin your users' browsers address
const SESSION_SECRET = process.env.SESSION_SECRET ?? 'quick start only: set SESSION_SECRET';
// Your token-signing key pair (in production, load it: jose's importPKCS8 and importSPKI).
const { privateKey, publicKey } = await generateKeyPair('ES256');
// Several processes: give each the same SESSION_SECRET, TOKENSEC_NONCE_KEY and a shared session store (docs/PRODUCTION.md).

const app = express();
app.use(session({ secret: SESSION_SECRET, resave: false, saveUninitialized: false })); // 1. the session
app.use(csrfSync().csrfSynchronisedProtection); // 2. the CSRF middleware
app.use(tokenSec.initialize({ cookie: true })); // 3. its token in the `tokensec` cookie, for the page
app.use(express.static(new URL('../public', import.meta.url).pathname));
app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));

// Log in (your credential check goes here) and log out: each starts a new session.
app.post('/login', (req, res, next) =>
  req.session.regenerate((err) => (err ? next(err) : ((req.session.userId = 'demo'), res.json({ userId: 'demo' })))),
);
app.post('/logout', (req, res, next) => req.session.regenerate((err) => (err ? next(err) : res.json({ ok: true }))));

// The token endpoint: a short-lived JWT bound to the page's DPoP key (jkt), for logged-in users only.
app.post('/token', (req, res, next) => (req.session.userId ? next() : res.status(401).json({ code: 'NOT_LOGGED_IN' })));
app.post(
  '/token',
  tokenSec.handshake({
    payload: (req, _res, { jkt }) =>
      new SignJWT({ sub: req.session.userId, cnf: { jkt } }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('5m').sign(privateKey),
    terminate: true,
    dpop: { origin: ORIGIN },
  }),
);
// An API route: the token plus a fresh proof of the same key.
const verifyToken = async (token: string) => (await jwtVerify(token, publicKey)).payload;
app.get('/api/me', tokenSec.dpop({ origin: ORIGIN, verifyToken }), (req, res) => res.json(req.tokenSec?.claims));
app.use(tokenSec.errorHandler());

app.listen(PORT, '127.0.0.1', () => console.log(`TokenSec quick start: open ${ORIGIN}/`));
