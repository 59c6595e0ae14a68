/** The DPoP proof verifier (RFC 9449 §4.3) against proofs made by jose, the `dpop` package and the RFC itself. */
import { createHmac } from 'node:crypto';
import * as dpopPackage from 'dpop';
import { calculateJwkThumbprint } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeClock } from '../../../support/clock.js';
import { memoryReplayStore } from '../../../../src/server/dpop/replay-store.js';
import type { DpopVerifyOptions } from '../../../../src/server/dpop/verify.js';
import { nonceSource } from '../../../../src/server/dpop/nonce.js';
import { checkAndRecordProof, joseProof, proofKey, sha256, signedProof, unsignedProof } from '../../../support/proofs.js';

const URL_ = 'https://api.example/resource';
const options = (extra: Partial<DpopVerifyOptions> = {}): DpopVerifyOptions => ({
  algorithms: ['ES256', 'EdDSA', 'Ed25519'],
  maxAge: 300,
  clockSkew: 5,
  replayStore: memoryReplayStore(),
  ...extra,
});
const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'accepted',
    (e: { code?: string }) => e.code,
  );

afterEach(() => {
  vi.useRealTimers();
});

describe('accepts proofs made by code nobody here wrote', () => {
  it('RFC 9449 §4.2 example proof, and its thumbprint is the one jose computes', async () => {
    const proof =
      'eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg';
    fakeClock(1_562_262_616_000);
    const verified = await checkAndRecordProof(proof, { method: 'POST', url: 'https://server.example.com/token' }, options());
    expect(verified.claims).toEqual({ jti: '-BwC3ESc6acc2lTc', htm: 'POST', htu: 'https://server.example.com/token', iat: 1562262616 });
    expect(verified.jkt).toBe(await calculateJwkThumbprint(verified.jwk));
  });

  it.each([
    ['ES256', 'ES256'],
    ['Ed25519', 'Ed25519'],
  ] as const)('%s proofs from the dpop package, with ath and nonce; jkt equals its thumbprint', async (packageAlg, alg) => {
    const keyPair = await dpopPackage.generateKeyPair(packageAlg);
    const proof = await dpopPackage.generateProof(keyPair, `${URL_}?page=2`, 'GET', 'n-1', 'the-access-token');
    const nonce = {
      current: () => 'n-1',
      isValid: (n: unknown) => n === 'n-1',
      problem: (n: unknown) => (n === 'n-1' ? undefined : ('missing' as const)),
    };
    const verified = await checkAndRecordProof(proof, { method: 'GET', url: URL_, accessToken: 'the-access-token' }, options({ nonce }));
    expect(verified.jkt).toBe(await dpopPackage.calculateThumbprint(keyPair.publicKey));
    expect(verified.alg).toBe(alg);
  });

  it('jose-signed proofs; htu compared after normalisation (query, fragment, default port, case, percent-encoding)', async () => {
    const key = await proofKey();
    for (const [sent, seen] of [
      ['https://API.example:443/a%7eb?x=1#f', 'https://api.example/a~b'],
      ['https://api.example/a%2fb', 'https://api.example/a%2Fb'],
      ['http://api.example:80/', 'http://api.example'],
    ]) {
      const proof = await joseProof(key, { htm: 'POST', htu: sent ?? '' });
      await expect(checkAndRecordProof(proof, { method: 'POST', url: seen ?? '' }, options())).resolves.toMatchObject({
        jkt: await calculateJwkThumbprint(key.jwk),
      });
    }
  });
});

describe('refuses, with the right code', () => {
  it('a replayed proof (same jti), once accepted', async () => {
    const key = await proofKey();
    const opts = options();
    const proof = await joseProof(key, { htm: 'GET', htu: URL_ });
    expect(await codeOf(checkAndRecordProof(proof, { method: 'GET', url: URL_ }, opts))).toBe('accepted');
    expect(await codeOf(checkAndRecordProof(proof, { method: 'GET', url: URL_ }, opts))).toBe('ERR_TOKENSEC_DPOP_REPLAYED_PROOF');
  });

  it('no proof', async () => {
    expect(await codeOf(checkAndRecordProof(undefined, { method: 'GET', url: URL_ }, options()))).toBe('ERR_TOKENSEC_DPOP_MISSING_PROOF');
  });

  const now = Math.floor(Date.now() / 1000);
  it.each([
    ['another method', { htm: 'POST', htu: URL_ }, {}],
    ['another URL', { htm: 'GET', htu: 'https://api.example/other' }, {}],
    ['another host', { htm: 'GET', htu: 'https://evil.example/resource' }, {}],
    ['an expired proof', { htm: 'GET', htu: URL_, iat: now - 301 }, {}],
    ['a proof from the future', { htm: 'GET', htu: URL_, iat: now + 60 }, {}],
    ['a non-integer iat', { htm: 'GET', htu: URL_, iat: now + 0.5 }, {}],
    ['typ JWT', { htm: 'GET', htu: URL_ }, { typ: 'JWT' }],
    ['no typ', { htm: 'GET', htu: URL_ }, { typ: undefined }],
    ['a lower-case method', { htm: 'get', htu: URL_ }, {}],
  ])('%s', async (_, claims, header) => {
    const proof = await joseProof(await proofKey(), claims, header);
    expect(await codeOf(checkAndRecordProof(proof, { method: 'GET', url: URL_ }, options()))).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
  });

  it('a signed proof with a crit header', async () => {
    const key = await proofKey();
    const proof = await signedProof(
      key,
      { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk, crit: ['exp'], exp: 1 },
      { jti: 'j', htm: 'GET', htu: URL_, iat: now },
    );
    expect(await codeOf(checkAndRecordProof(proof, { method: 'GET', url: URL_ }, options()))).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
    // The same without crit passes: the refusal is the crit header's.
    const plain = await signedProof(key, { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk }, { jti: 'j2', htm: 'GET', htu: URL_, iat: now });
    expect(await codeOf(checkAndRecordProof(plain, { method: 'GET', url: URL_ }, options()))).toBe('accepted');
  });

  it('a jwk that holds the private key (d)', async () => {
    const key = await proofKey();
    const { exportJWK } = await import('jose');
    const privateJwk = await exportJWK(key.privateKey);
    const proof = await joseProof(key, { htm: 'GET', htu: URL_ }, { jwk: privateJwk });
    expect(await codeOf(checkAndRecordProof(proof, { method: 'GET', url: URL_ }, options()))).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
  });

  it('alg none and HS256 (a MAC "signed" with the public key), and an algorithm not allowed', async () => {
    const key = await proofKey();
    const claims = { jti: 'j', htm: 'GET', htu: URL_, iat: now };
    const none = unsignedProof({ typ: 'dpop+jwt', alg: 'none', jwk: key.jwk }, claims);
    const headerHs = { typ: 'dpop+jwt', alg: 'HS256', jwk: key.jwk };
    const input = `${Buffer.from(JSON.stringify(headerHs)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const hs256 = `${input}.${createHmac('sha256', JSON.stringify(key.jwk)).update(input).digest('base64url')}`;
    for (const proof of [none, hs256])
      expect(await codeOf(checkAndRecordProof(proof, { method: 'GET', url: URL_ }, options()))).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
    const ed = await joseProof(await proofKey('EdDSA'), { htm: 'GET', htu: URL_ });
    expect(await codeOf(checkAndRecordProof(ed, { method: 'GET', url: URL_ }, options({ algorithms: ['ES256'] })))).toBe(
      'ERR_TOKENSEC_DPOP_INVALID_PROOF',
    );
  });

  it('a signature by another key than the jwk, and a flipped signature byte', async () => {
    const key = await proofKey();
    const other = await proofKey();
    const forged = await joseProof({ ...other, jwk: key.jwk }, { htm: 'GET', htu: URL_ });
    expect(await codeOf(checkAndRecordProof(forged, { method: 'GET', url: URL_ }, options()))).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
    const good = await joseProof(key, { htm: 'GET', htu: URL_ });
    const [h, c, s = ''] = good.split('.');
    const bytes = Buffer.from(s, 'base64url');
    bytes.set([(bytes[10] ?? 0) ^ 1], 10);
    expect(await codeOf(checkAndRecordProof(`${h}.${c}.${bytes.toString('base64url')}`, { method: 'GET', url: URL_ }, options()))).toBe(
      'ERR_TOKENSEC_DPOP_INVALID_PROOF',
    );
  });

  it('ath of another token, or missing; tsh of another handshake', async () => {
    const key = await proofKey();
    const wrongAth = await joseProof(key, { htm: 'GET', htu: URL_, ath: await sha256('another token') });
    const noAth = await joseProof(key, { htm: 'GET', htu: URL_ });
    for (const proof of [wrongAth, noAth]) {
      expect(await codeOf(checkAndRecordProof(proof, { method: 'GET', url: URL_, accessToken: 'the token' }, options()))).toBe(
        'ERR_TOKENSEC_DPOP_INVALID_PROOF',
      );
    }
    const tsh = await joseProof(key, { htm: 'POST', htu: URL_, tsh: await sha256('v3.x25519.AAAA.BBBB') });
    expect(await codeOf(checkAndRecordProof(tsh, { method: 'POST', url: URL_, handshake: 'v3.x25519.AAAA.CCCC' }, options()))).toBe(
      'ERR_TOKENSEC_DPOP_INVALID_PROOF',
    );
  });

  it('a nonce that is missing or not this key’s → NONCE_REQUIRED; one whose windows passed → NONCE_STALE; the current and previous window pass', async () => {
    const clock = fakeClock(1_000_000_000);
    const nonce = nonceSource({ window: 60 });
    const key = await proofKey();
    const opts = options({ nonce });
    const make = (n?: string) => joseProof(key, { htm: 'GET', htu: URL_, iat: Math.floor(Date.now() / 1000), ...(n ? { nonce: n } : {}) });
    expect(await codeOf(checkAndRecordProof(await make(), { method: 'GET', url: URL_ }, opts))).toBe('ERR_TOKENSEC_DPOP_NONCE_REQUIRED');
    const issued = nonce.current();
    expect(await codeOf(checkAndRecordProof(await make(issued), { method: 'GET', url: URL_ }, opts))).toBe('accepted');
    clock.advance(60_000);
    expect(await codeOf(checkAndRecordProof(await make(issued), { method: 'GET', url: URL_ }, opts))).toBe('accepted');
    clock.advance(60_000);
    expect(await codeOf(checkAndRecordProof(await make(issued), { method: 'GET', url: URL_ }, opts))).toBe('ERR_TOKENSEC_DPOP_NONCE_STALE');
    const stranger = nonceSource({ window: 60, key: 'another key of at least thirty-two bytes' }).current();
    expect(await codeOf(checkAndRecordProof(await make(stranger), { method: 'GET', url: URL_ }, opts))).toBe(
      'ERR_TOKENSEC_DPOP_NONCE_REQUIRED',
    );
    expect(await codeOf(checkAndRecordProof(await make('n0nce'), { method: 'GET', url: URL_ }, opts))).toBe(
      'ERR_TOKENSEC_DPOP_NONCE_REQUIRED',
    );
  });

  it('a replay store that is full refuses rather than forgets', () => {
    const clock = fakeClock(0);
    const store = memoryReplayStore({ max: 2 });
    const add = (key: string) => {
      try {
        return store.addIfAbsent(key, '1', 10) === undefined;
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    expect([add('a'), add('b'), add('c'), add('a')]).toEqual([true, true, 'ERR_TOKENSEC_STORE_FULL', false]);
    clock.set(11_000);
    expect([add('c'), add('a')]).toEqual([true, true]);
  });
});
