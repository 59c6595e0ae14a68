/**
 * Interop on API calls, per docs/PROTOCOL.md "API calls": proofs made by code nobody here wrote
 * (oauth4webapi, the dpop package) pass tokenSec.dpop() in the spec's cases (ES256, Ed25519 under
 * its fully-specified name on a server that lists EdDSA, a URL with a query, every method), with
 * server nonces on as by default (4.0): each library answers use_dpop_nonce with one retry and
 * keeps the nonce, also once it went stale; they are refused where the spec refuses them; proofs
 * made by TokenSec's client verify with jose.
 */
import * as dpopPackage from 'dpop';
import express from 'express';
import { EmbeddedJWK, SignJWT, calculateJwkThumbprint, exportJWK, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDpopProof, getDpopKey, rotateDpopKey } from '../../client/dpop.js';
import tokenSec from '../../src/index.js';
import { fakeClock } from '../support/clock.js';
import { listen } from '../support/helpers.js';
import { currentNonce } from '../support/proofs.js';

const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the test!');
const mint = (jkt: string) =>
  new SignJWT({ sub: 'alice', cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey);
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;

let server: Awaited<ReturnType<typeof listen>>;
const codes: string[] = [];

beforeAll(async () => {
  const app = express();
  const ok = (req: express.Request, res: express.Response) =>
    res.json({ method: req.method, jkt: (req as { tokenSec?: { jkt: string } }).tokenSec?.jkt });
  // Lists EdDSA, the name 3.0's documentation gave; both libraries sign Ed25519 keys as "Ed25519".
  // Nonces as by default (4.0); /api/nonce has a key of its own, as processes sharing TOKENSEC_NONCE_KEY do.
  app.all('/api/items', tokenSec.dpop({ verifyToken, algorithms: ['ES256', 'EdDSA'] }), ok);
  app.all(
    '/api/nonce',
    tokenSec.dpop({ verifyToken, algorithms: ['ES256', 'EdDSA'], nonce: { key: 'nonce key shared by processes, 32+ bytes' } }),
    ok,
  );
  app.use((err: { code: string }, _req: express.Request, _res: express.Response, next: express.NextFunction) => {
    codes.push(err.code);
    next(err);
  });
  server = await listen(app);
});
afterAll(() => server.close());

/** oauth4webapi's documented pattern: a use_dpop_nonce error is retried once (the handle has kept the nonce). */
async function withNonceRetry(request: () => Promise<Response>): Promise<Response> {
  try {
    return await request();
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    return request();
  }
}

async function webCryptoPair(alg: 'ES256' | 'Ed25519') {
  const params = alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
  const keyPair = (await crypto.subtle.generateKey(params, false, ['sign', 'verify'])) as CryptoKeyPair;
  return { keyPair, jkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)) };
}

describe('oauth4webapi', () => {
  it.each(['ES256', 'Ed25519'] as const)('%s: every method, a URL with a query; a second handle (another key) is refused', async (alg) => {
    const { keyPair, jkt } = await webCryptoPair(alg);
    const token = await mint(jkt);
    const handle = oauth.DPoP({}, keyPair);
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      const response = await withNonceRetry(() =>
        oauth.protectedResourceRequest(token, method, new URL(`${server.origin}/api/items?page=2&sort=-id`), undefined, undefined, {
          DPoP: handle,
          [oauth.allowInsecureRequests]: true,
        }),
      );
      expect(response.status, method).toBe(200);
      expect(await response.json()).toEqual({ method, jkt });
    }
    const thief = oauth.DPoP({}, (await webCryptoPair(alg)).keyPair);
    // oauth4webapi reports a 401 challenge by throwing it, parsed.
    const refused = await withNonceRetry(() =>
      oauth.protectedResourceRequest(token, 'GET', new URL(`${server.origin}/api/items`), undefined, undefined, {
        DPoP: thief,
        [oauth.allowInsecureRequests]: true,
      }),
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenge = refused as oauth.WWWAuthenticateChallengeError;
    expect(challenge.response.status).toBe(401);
    expect(challenge.cause[0]).toMatchObject({ scheme: 'dpop', parameters: { error: 'invalid_token' } });
    expect(codes.at(-1)).toBe('ERR_TOKENSEC_DPOP_INVALID_TOKEN');
  });

  it('server nonces: the first call is refused with use_dpop_nonce, the library retries with the nonce and passes', async () => {
    const { keyPair, jkt } = await webCryptoPair('ES256');
    const token = await mint(jkt);
    const handle = oauth.DPoP({}, keyPair);
    const request = () =>
      oauth.protectedResourceRequest(token, 'GET', new URL(`${server.origin}/api/nonce`), undefined, undefined, {
        DPoP: handle,
        [oauth.allowInsecureRequests]: true,
      });
    let first: unknown;
    try {
      await request();
    } catch (error) {
      first = error;
    }
    expect(oauth.isDPoPNonceError(first)).toBe(true);
    expect(codes.at(-1)).toBe('ERR_TOKENSEC_DPOP_NONCE_REQUIRED');
    const second = await request();
    expect(second.status).toBe(200);
    expect(second.headers.get('dpop-nonce')).toBeTruthy();
    // Steady state: the handle carries the nonce, no challenge.
    expect((await request()).status).toBe(200);
    // Two windows later the nonce it keeps is stale: one use_dpop_nonce (NONCE_STALE), one retry, accepted.
    fakeClock(Date.now() + 61_000);
    try {
      expect((await withNonceRetry(request)).status).toBe(200);
      expect(codes.at(-1)).toBe('ERR_TOKENSEC_DPOP_NONCE_STALE');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('the dpop package', () => {
  it.each(['ES256', 'Ed25519'] as const)(
    '%s: accepted once; the same proof again is a replay; with nonces after the retry',
    async (alg) => {
      const keyPair = await dpopPackage.generateKeyPair(alg);
      const jkt = await dpopPackage.calculateThumbprint(keyPair.publicKey);
      const token = await mint(jkt);
      const url = `${server.origin}/api/items`;
      const send = (p: string, path = '/api/items') =>
        fetch(`${server.origin}${path}`, { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: p } });
      // Nonces on (the default): the first proof has none, the answer gives it.
      const challenge = await send(await dpopPackage.generateProof(keyPair, url, 'POST', undefined, token));
      expect([challenge.status, codes.at(-1)]).toEqual([401, 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
      expect(challenge.headers.get('www-authenticate')).toMatch(/^DPoP error="use_dpop_nonce"/);
      const proof = await dpopPackage.generateProof(keyPair, url, 'POST', challenge.headers.get('dpop-nonce') ?? '', token);
      expect((await send(proof)).status).toBe(200);
      const replay = await send(proof);
      expect(replay.status).toBe(401);
      expect(replay.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
      expect(codes.at(-1)).toBe('ERR_TOKENSEC_DPOP_REPLAYED_PROOF');
      const nonceUrl = `${server.origin}/api/nonce`;
      const first = await send(await dpopPackage.generateProof(keyPair, nonceUrl, 'POST', undefined, token), '/api/nonce');
      expect(first.status).toBe(401);
      const nonce = first.headers.get('dpop-nonce') ?? '';
      expect((await send(await dpopPackage.generateProof(keyPair, nonceUrl, 'POST', nonce, token), '/api/nonce')).status).toBe(200);
    },
  );

  it('a proof for another method or another path is refused (htm, htu)', async () => {
    const keyPair = await dpopPackage.generateKeyPair('ES256');
    const token = await mint(await dpopPackage.calculateThumbprint(keyPair.publicKey));
    for (const [htu, htm] of [
      [`${server.origin}/api/items`, 'GET'],
      [`${server.origin}/api/other`, 'POST'],
      [`${server.origin.replace('127.0.0.1', 'localhost')}/api/items`, 'POST'],
    ] as const) {
      const response = await fetch(`${server.origin}/api/items`, {
        method: 'POST',
        headers: { authorization: `DPoP ${token}`, dpop: await dpopPackage.generateProof(keyPair, htu, htm, currentNonce(), token) },
      });
      expect(response.status).toBe(401);
      expect(codes.at(-1)).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
    }
  });
});

describe("TokenSec's client proofs", () => {
  it.each(['ES256', 'EdDSA'] as const)('%s: verify with jose, and pass tokenSec.dpop()', async (algorithm) => {
    const key = await rotateDpopKey({ algorithm });
    expect((await getDpopKey()).thumbprint).toBe(key.thumbprint);
    const token = await mint(key.thumbprint);
    const url = `${server.origin}/api/items?q=1#frag`;
    const proof = await createDpopProof({ method: 'patch', url, accessToken: token, key, nonce: currentNonce() });
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [algorithm] });
    expect(protectedHeader).toEqual({ typ: 'dpop+jwt', alg: algorithm, jwk: key.jwk });
    expect(await calculateJwkThumbprint(protectedHeader.jwk ?? {})).toBe(key.thumbprint);
    expect(payload).toMatchObject({ htm: 'PATCH', htu: `${server.origin}/api/items` });
    expect(payload.jti).toMatch(/^[\w-]{22}$/);
    const response = await fetch(url, { method: 'PATCH', headers: { authorization: `DPoP ${token}`, dpop: proof } });
    expect(response.status).toBe(200);
  });
});
