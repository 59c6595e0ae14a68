/**
 * Threat table, "holder of a copied access token": whoever copies the token from a log (a proxy,
 * an APM trace) tries it on the API. Behind tokenSec.dpop() the token is bound to the page's key
 * (cnf.jkt), so the copy alone is refused; only a route that accepts plain bearers would take it.
 */
import express from 'express';
import { SignJWT, jwtVerify } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDpopProof, handshake } from '../../client/index.js';
import tokenSec from '../../src/index.js';
import { listen } from '../support/helpers.js';
import { joseProof, proofKey, sha256 } from '../support/proofs.js';

const SECRET = 'bearer-replay-secret-0123456789';
const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the demo!');
let server: Awaited<ReturnType<typeof listen>>;
const log: string[] = [];
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;

beforeAll(async () => {
  const app = express();
  app.post(
    '/token',
    tokenSec.handshake({
      secret: SECRET,
      terminate: true,
      payload: (_req, _res, { jkt }) =>
        new SignJWT({ sub: 'alice', cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey),
    }),
  );
  // An access log that keeps headers, in front of the API.
  app.use((req, _res, next) => {
    log.push(`${req.method} ${req.url} authorization=${req.get('authorization')} dpop=${req.get('dpop')}`);
    next();
  });
  app.get('/api/me', tokenSec.dpop({ verifyToken }), (req, res) =>
    res.json({ sub: (req as { tokenSec?: { claims: { sub?: unknown } } }).tokenSec?.claims.sub }),
  );
  // For contrast: a route that still takes plain bearers.
  app.get('/api/bearer', async (req, res) => {
    try {
      res.json({ sub: (await verifyToken((req.get('authorization') ?? '').replace(/^Bearer /, ''))).sub });
    } catch {
      res.status(401).end();
    }
  });
  app.use((err: { status?: number; code?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(err.status ?? 500).json({ code: err.code });
  });
  server = await listen(app);
});
afterAll(() => server.close());

it('a token and proof copied from an access log are refused behind tokenSec.dpop(); a plain-bearer route would take the token', async () => {
  const url = `${server.origin}/api/me`;
  const token = await handshake({ uri: `${server.origin}/token`, secret: SECRET });
  const page = await fetch(url, {
    headers: { authorization: `DPoP ${token}`, dpop: await createDpopProof({ method: 'GET', url, accessToken: token }) },
  });
  expect(page.status).toBe(200);
  const [, copiedToken, copiedProof] = /authorization=DPoP (\S+) dpop=(\S+)/.exec(log.at(-1) ?? '') ?? [];
  expect(copiedToken).toBe(token);

  const asBearer = await fetch(url, { headers: { authorization: `Bearer ${copiedToken}` } });
  const withCopiedProof = await fetch(url, { headers: { authorization: `DPoP ${copiedToken}`, dpop: copiedProof ?? '' } });
  const thief = await proofKey();
  const withOwnKey = await fetch(url, {
    headers: {
      authorization: `DPoP ${copiedToken}`,
      dpop: await joseProof(thief, { htm: 'GET', htu: url, ath: await sha256(copiedToken ?? '') }),
    },
  });
  expect([asBearer.status, withCopiedProof.status, withOwnKey.status]).toEqual([401, 401, 401]);
  expect([(await asBearer.json()).code, (await withCopiedProof.json()).code, (await withOwnKey.json()).code]).toEqual([
    'ERR_TOKENSEC_DPOP_INVALID_TOKEN',
    'ERR_TOKENSEC_DPOP_REPLAYED_PROOF',
    'ERR_TOKENSEC_DPOP_INVALID_TOKEN',
  ]);
  const plain = await fetch(`${server.origin}/api/bearer`, { headers: { authorization: `Bearer ${copiedToken}` } });
  expect(plain.status).toBe(200);
});
