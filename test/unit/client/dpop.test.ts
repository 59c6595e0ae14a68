/**
 * The browser client's DPoP functions, run on Node's Web Crypto (no IndexedDB there, so the key
 * lives in memory): proofs checked with jose, thumbprints against jose's RFC 7638 code, one key for
 * concurrent callers, options refused with a code.
 */
import { createHash } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { checkAndRecordProof } from '../../support/proofs.js';
import { createDpopProof, deleteDpopKey, getDpopKey, rotateDpopKey } from '../../../client/dpop.js';
import { memoryReplayStore } from '../../../src/server/dpop/replay-store.js';

beforeEach(() => deleteDpopKey());

describe('the key', () => {
  it('ten concurrent callers get one key; its thumbprint is the one jose computes', async () => {
    const keys = await Promise.all(Array.from({ length: 10 }, () => getDpopKey()));
    expect(new Set(keys.map((k) => k.thumbprint)).size).toBe(1);
    const [key] = keys;
    expect(key?.privateKey.extractable).toBe(false);
    expect(key?.thumbprint).toBe(await calculateJwkThumbprint(key?.jwk ?? {}));
    expect(Object.keys(key?.jwk ?? {}).sort()).toEqual(['crv', 'kty', 'x', 'y']);
  });

  it('rotate makes a new key that getDpopKey then returns; delete forgets it', async () => {
    const first = await getDpopKey();
    const rotated = await rotateDpopKey();
    expect(rotated.thumbprint).not.toBe(first.thumbprint);
    expect((await getDpopKey()).thumbprint).toBe(rotated.thumbprint);
    await deleteDpopKey();
    expect([first.thumbprint, rotated.thumbprint]).not.toContain((await getDpopKey()).thumbprint);
  });

  it('EdDSA on request, with an OKP thumbprint jose agrees with', async () => {
    const key = await getDpopKey({ algorithm: 'EdDSA' });
    expect(key.jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    expect(key.thumbprint).toBe(await calculateJwkThumbprint(key.jwk));
  });

  it('an unknown algorithm is ERR_TOKENSEC_INVALID_OPTIONS', async () => {
    await expect(getDpopKey({ algorithm: 'RS256' as never })).rejects.toMatchObject({ code: 'ERR_TOKENSEC_INVALID_OPTIONS' });
  });
});

describe('proofs', () => {
  it.each(['ES256', 'EdDSA'] as const)('%s: jose verifies the proof; the claims are the request, normalised', async (algorithm) => {
    await getDpopKey({ algorithm });
    const proof = await createDpopProof({ method: 'patch', url: 'HTTPS://API.Example:443/a/../orders/%7e7?q=1#x', accessToken: 'at' });
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [algorithm] });
    expect(protectedHeader.alg).toBe(algorithm);
    expect(payload).toMatchObject({
      htm: 'PATCH',
      htu: 'https://api.example/orders/~7',
      ath: createHash('sha256').update('at').digest('base64url'),
    });
    expect(Math.abs((payload.iat ?? 0) - Date.now() / 1000)).toBeLessThan(5);
  });

  it('every proof has its own jti; the server verifier accepts each once', async () => {
    const replayStore = memoryReplayStore();
    const url = 'https://api.example/me';
    const options = { algorithms: ['ES256'] as const, maxAge: 300, clockSkew: 5, replayStore };
    const proofs = await Promise.all([1, 2, 3].map(() => createDpopProof({ method: 'GET', url, nonce: 'n-1' })));
    const verified = await Promise.all(proofs.map((p) => checkAndRecordProof(p, { method: 'GET', url }, options)));
    expect(new Set(verified.map((v) => v.claims.jti)).size).toBe(3);
    expect(verified.every((v) => v.claims.nonce === 'n-1' && v.jkt === verified[0]?.jkt)).toBe(true);
    await expect(checkAndRecordProof(proofs[0], { method: 'GET', url }, options)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF',
    });
  });

  it.each([
    ['no method', { url: '/x' }],
    ['a relative url without a page', { method: 'GET', url: '/x' }],
    ['a non-http url', { method: 'GET', url: 'ftp://example.com/x' }],
  ])('%s: ERR_TOKENSEC_INVALID_OPTIONS', async (_, input) => {
    await expect(createDpopProof(input as never)).rejects.toMatchObject({ code: 'ERR_TOKENSEC_INVALID_OPTIONS' });
  });
});
