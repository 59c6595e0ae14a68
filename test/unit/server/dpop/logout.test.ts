/**
 * What logout does to access tokens already issued (SECURITY.md, "Logout"): nothing. dpop() checks
 * the token and its key, never the session, so a token delivered before logout stays good with its
 * key until its `exp`; only then is it refused.
 */
import express from 'express';
import session from 'express-session';
import { SignJWT, jwtVerify } from 'jose';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { handshake } from '../../../../client/index.js';
import { createDpopProof } from '../../../../client/dpop.js';
import tokenSec from '../../../../src/index.js';
import { fakeClock } from '../../../support/clock.js';
import { listen } from '../../../support/helpers.js';

const SECRET = 'logout-test-secret-0123456789';
const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the test!');
let server: Awaited<ReturnType<typeof listen>>;

beforeAll(async () => {
  const app = express();
  // The Date header by the (possibly faked) clock: Node's own is cached by real time.
  app.use((_req, res, next) => {
    res.setHeader('Date', new Date().toUTCString());
    next();
  });
  app.use(session({ secret: 'session secret for tests', resave: false, saveUninitialized: true }));
  app.post(
    '/token',
    tokenSec.handshake({
      secret: SECRET,
      terminate: true,
      payload: (_req, _res, { jkt }) =>
        new SignJWT({ sub: 'alice', cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey),
    }),
  );
  app.post('/logout', async (req, res) => {
    await tokenSec.unbind(req);
    req.session.destroy(() => res.json({ ok: true }));
  });
  app.get('/api/me', tokenSec.dpop({ verifyToken: async (token) => (await jwtVerify(token, signingKey)).payload }), (_req, res) =>
    res.json({ ok: true }),
  );
  app.use(tokenSec.errorHandler());
  server = await listen(app);
});
afterAll(() => server.close());
afterEach(() => vi.useRealTimers());

it('a token issued before logout still passes dpop() with its key until exp, and is refused after', async () => {
  const clock = fakeClock(Date.now());
  const login = await fetch(`${server.origin}/token`, { method: 'POST' }); // any request: the session cookie
  const cookie = (login.headers.getSetCookie()[0] ?? '').split(';', 1)[0] ?? '';
  const token = await handshake({ uri: `${server.origin}/token`, secret: SECRET, headers: { cookie } });
  const url = `${server.origin}/api/me`;
  // As session.fetch does: the latest DPoP-Nonce, and one retry after a nonce challenge.
  let nonce: string | undefined;
  const call = async (retry = true): Promise<number> => {
    const dpop = await createDpopProof({ method: 'GET', url, accessToken: token, nonce });
    const response = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop } });
    nonce = response.headers.get('dpop-nonce') ?? nonce;
    const challenged = /use_dpop_nonce/.test(response.headers.get('www-authenticate') ?? '');
    return challenged && retry ? call(false) : response.status;
  };
  expect(await call()).toBe(200);
  expect((await fetch(`${server.origin}/logout`, { method: 'POST', headers: { cookie } })).status).toBe(200);
  expect(await call()).toBe(200);
  clock.advance(4 * 60_000);
  expect(await call()).toBe(200);
  clock.advance(61_000);
  expect(await call()).toBe(401);
});
