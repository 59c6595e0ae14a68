/**
 * The DPoP header cache (src/server/dpop/verify.ts): as strict as an uncached check, bounded, and
 * its entries cannot be changed through a result.
 */
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { memoryReplayStore } from '../../../../src/server/dpop/replay-store.js';
import { checkDpopProof, headerCacheForTests, type DpopVerifyOptions } from '../../../../src/server/dpop/verify.js';
import { joseProof, proofKey, signedProof } from '../../../support/proofs.js';

const URL_ = 'https://api.example/resource';
const options = (extra: Partial<DpopVerifyOptions> = {}): DpopVerifyOptions => ({
  algorithms: ['ES256', 'EdDSA', 'Ed25519'],
  maxAge: 60,
  clockSkew: 5,
  replayStore: memoryReplayStore(),
  ...extra,
});
const refusal = (proof: string, opts = options()) => {
  try {
    checkDpopProof(proof, { method: 'GET', url: URL_ }, opts);
    return 'accepted';
  } catch (error) {
    return `${(error as { code?: string }).code}: ${(error as Error).message}`;
  }
};

describe('DPoP header cache', () => {
  beforeEach(() => headerCacheForTests.clear());

  it('every proof of one key shares one cached header, with the same thumbprint, key and claims as the first', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      headerCacheForTests.clear();
      const key = await proofKey(alg);
      const proofs = await Promise.all([1, 2, 3].map(() => joseProof(key, { htm: 'GET', htu: URL_ })));
      const results = proofs.map((p) => checkDpopProof(p, { method: 'GET', url: URL_ }, options()));
      expect(headerCacheForTests.size()).toBe(1);
      const jkt = await calculateJwkThumbprint(key.jwk);
      expect(results.map((r) => r.jkt)).toEqual([jkt, jkt, jkt]);
      expect(new Set(results.map((r) => r.claims.jti)).size).toBe(3);
      // A proof from the cached key with a bad signature is still refused.
      const [h, c] = proofs[0]!.split('.');
      const [, , s] = proofs[1]!.split('.');
      expect(refusal(`${h}.${c}.${s}`)).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF: Invalid DPoP proof: the signature does not verify.');
    }
  });

  it('refused headers are never cached and stay refused: private key member, typ, alg, crit', async () => {
    const key = await proofKey('ES256');
    const privateJwk = await exportJWK(key.privateKey);
    const claims = { jti: 'j', htm: 'GET', htu: URL_, iat: Math.floor(Date.now() / 1000) };
    const cases = [
      [{ typ: 'dpop+jwt', alg: 'ES256', jwk: privateJwk }, /jwk must be exactly the public P-256 key/],
      [{ typ: 'jwt', alg: 'ES256', jwk: key.jwk }, /typ must be "dpop\+jwt"/],
      [{ typ: 'dpop+jwt', alg: 'ES384', jwk: key.jwk }, /alg must be one of/],
      [{ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk, crit: ['x'] }, /crit is not supported/],
    ] as const;
    for (const [header, message] of cases) {
      const proof = await signedProof(key, header, claims);
      for (let i = 0; i < 2; i++) expect(refusal(proof)).toMatch(message);
    }
    expect(headerCacheForTests.size()).toBe(0);
  });

  it('the allowlist is checked on every proof: a header cached for an EdDSA verifier is refused by an ES256-only one', async () => {
    const key = await proofKey('EdDSA');
    const proof = await joseProof(key, { htm: 'GET', htu: URL_ });
    expect(refusal(proof)).toBe('accepted');
    expect(headerCacheForTests.size()).toBe(1);
    expect(refusal(await joseProof(key, { htm: 'GET', htu: URL_ }), options({ algorithms: ['ES256'] }))).toBe(
      'ERR_TOKENSEC_DPOP_INVALID_PROOF: Invalid DPoP proof: alg must be one of ES256.',
    );
  });

  it('bounded: at most 1000 headers; an evicted key verifies again in full; a header over 1024 characters is not kept', async () => {
    const key = await proofKey('EdDSA');
    // Each kid makes other header bytes for the same key: 1,100 distinct accepted headers.
    const first = await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: 'k0' });
    expect(refusal(first)).toBe('accepted');
    for (let i = 1; i < 1100; i++) expect(refusal(await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: `k${i}` }))).toBe('accepted');
    expect(headerCacheForTests.size()).toBe(1000);
    expect(refusal(await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: 'k0' }))).toBe('accepted');
    headerCacheForTests.clear();
    const long = await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: 'x'.repeat(1100) });
    expect(refusal(long)).toBe('accepted');
    expect(headerCacheForTests.size()).toBe(0);
  });

  it('a JWK that is no valid key: refused as a bad signature encoding first, else as the jwk (the 3.0 order), never cached', () => {
    const zero = Buffer.alloc(32).toString('base64url'); // (0, 0) is not on P-256
    const header = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: zero, y: zero } }));
    const claims = Buffer.from(JSON.stringify({ jti: 'j', htm: 'GET', htu: URL_, iat: 1 })).toString('base64url');
    const base = `${header.toString('base64url')}.${claims}`;
    expect(refusal(`${base}.A`)).toMatch(/the signature does not verify/);
    expect(refusal(`${base}.${Buffer.alloc(64).toString('base64url')}`)).toMatch(/the jwk is not a valid public key/);
    expect(headerCacheForTests.size()).toBe(0);
  });

  it('three parts exactly, the signature not empty (as split did)', () => {
    for (const proof of ['a.b', 'a.b.', 'a.b.c.d', 'abc']) expect(refusal(proof)).toMatch(/not a compact JWS of three parts/);
    expect(refusal('..c')).toMatch(/the header is not a base64url JSON object/);
  });
});

describe('a cached header cannot be changed through a result', () => {
  it('the jwk returned is frozen, so a caller cannot alter what the next proof of that key gets', async () => {
    headerCacheForTests.clear();
    const key = await proofKey('ES256');
    const first = checkDpopProof(await joseProof(key, { htm: 'GET', htu: URL_ }), { method: 'GET', url: URL_ }, options());
    expect(Object.isFrozen(first.jwk)).toBe(true);
    expect(() => Object.assign(first.jwk, { x: 'changed' })).toThrow(TypeError);
    const second = checkDpopProof(await joseProof(key, { htm: 'GET', htu: URL_ }), { method: 'GET', url: URL_ }, options());
    expect(second.jwk).toEqual({ kty: 'EC', crv: 'P-256', x: key.jwk.x, y: key.jwk.y });
  });
});
