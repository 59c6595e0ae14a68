/**
 * The vectors of docs/PROTOCOL.md, read from that file, against the server code (node:crypto)
 * and the client code (Web Crypto, here Node's implementation of it).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeClock } from '../../support/clock.js';
import { KEY_AGREEMENT } from '../../../client/algorithms.js';
import { openResponse, requestHeader, type ClientKeys } from '../../../client/crypto.js';
import { hkdfSha256, hmacSha256, importServerKeyPair, verifyBinding } from '../../../src/server/crypto/primitives.js';
import { bindingInput, keyContext, utf8 } from '../../../src/protocol/context.js';
import { DEFAULT_HEADER_LIMIT, joinResponse, parseRequest, splitResponse } from '../../../src/protocol/wire.js';
import { secretProblem } from '../../../src/server/handshake/secret.js';
import { createHash, createPrivateKey, createPublicKey, sign, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { acceptedAlgorithms, normalizeHtu, type DpopAlgorithm } from '../../../src/protocol/dpop.js';
import { canonicalHtu, isValidHost } from '../../../src/protocol/htu.js';
import { checkAndRecordProof, joseProof, proofKey } from '../../support/proofs.js';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify } from 'jose';
import { memoryReplayStore } from '../../../src/server/dpop/replay-store.js';
import { checkDpopProof } from '../../../src/server/dpop/verify.js';
import { defined, hex, protocolVectors, sealPayload, type Vector } from '../../support/helpers.js';

const h = (b: Uint8Array | ArrayBuffer) => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString('hex');
const b64u = (text: string) => Buffer.from(text, 'hex').toString('base64url');

/** The vector's client private key, imported into Web Crypto as a non-extractable key. */
async function clientKeys(v: Vector): Promise<ClientKeys> {
  const publicKey = hex(v.clientPublicKey);
  const jwk: JsonWebKey =
    v.algorithm === 'x25519'
      ? { kty: 'OKP', crv: 'X25519', d: b64u(v.clientPrivateKey), x: b64u(v.clientPublicKey) }
      : {
          kty: 'EC',
          crv: 'P-256',
          d: b64u(v.clientPrivateKey),
          x: b64u(v.clientPublicKey.slice(2, 66)),
          y: b64u(v.clientPublicKey.slice(66)),
        };
  const privateKey = await crypto.subtle.importKey('jwk', jwk, KEY_AGREEMENT[v.algorithm], false, ['deriveBits']);
  return { algorithm: v.algorithm, privateKey, publicKey };
}

const vectors = protocolVectors();

it('the secret of every vector follows the HMAC key rules (16 to 1024 bytes, no U+0000)', () => {
  for (const v of vectors) expect(secretProblem(v.secret)).toBeUndefined();
});

it('one vector has a key-derivation info of over 1024 bytes', () => {
  expect(vectors.some((v) => v.keyContext.length / 2 > 1024)).toBe(true);
});

it('one vector is in body form: a 3-field header and the ciphertext as the body', () => {
  const body = vectors.filter((v) => v.responseBody !== undefined);
  expect(body).toHaveLength(1);
  expect(body[0]?.responseHeader.split('.')).toHaveLength(3);
});

it('docs/PROTOCOL.md publishes at least 3 vectors covering both algorithms', () => {
  expect(vectors.length).toBeGreaterThanOrEqual(3);
  expect(new Set(vectors.map((v) => v.algorithm))).toEqual(new Set(['x25519', 'p256']));
});

it('the DPoP vectors use the RFC 7515 appendix A.3 ES256 key, and one vector has no proof and no jkt field', () => {
  expect(vectors.filter((v) => v.dpopJwk).map((v) => v.dpopJwk?.x)).toContain('f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU');
  expect(vectors.some((v) => !v.dpopProof && !('jkt' in v))).toBe(true);
});

describe.each(vectors.map((v) => [v.name, v] as const))('%s', (_, v) => {
  const target = {
    header: v.header,
    method: v.method,
    path: v.path,
    jkt: v.jkt === undefined ? undefined : new Uint8Array(Buffer.from(v.jkt, 'base64url')),
  };

  if (v.dpopProof) {
    it('DPoP: jkt is the RFC 7638 thumbprint jose computes, tsh the hash of the request header, and the proof verifies with ours and jose', async () => {
      const proof = defined(v.dpopProof, 'proof');
      const jwk = defined(v.dpopJwk, 'jwk');
      expect(v.jkt).toBe(await calculateJwkThumbprint(jwk));
      expect(v.tsh).toBe(createHash('sha256').update(v.requestHeader).digest('base64url'));
      const dpop = defined(v.dpop, 'dpop inputs');
      fakeClock(dpop.iat * 1000);
      const verified = await checkAndRecordProof(
        proof,
        { method: v.method, url: dpop.htu, handshake: v.requestHeader },
        { algorithms: ['ES256'], maxAge: 60, clockSkew: 5, replayStore: memoryReplayStore() },
      );
      expect(verified.jkt).toBe(v.jkt);
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256'],
        currentDate: new Date(dpop.iat * 1000),
      });
      expect(protectedHeader.jwk).toEqual(jwk);
      expect(payload).toEqual({ jti: dpop.jti, htm: v.method, htu: dpop.htu, iat: dpop.iat, tsh: v.tsh });
    });
  }

  it('server: binding input, binding, shared secret, context, key and response header', () => {
    const request = parseRequest(v.requestHeader);
    expect(request.algorithm).toBe(v.algorithm);
    expect(h(request.publicKey)).toBe(v.clientPublicKey);
    expect(h(bindingInput(v.algorithm, request.publicKey, target))).toBe(v.bindingInput);
    expect(h(request.binding)).toBe(v.binding);
    expect(h(hmacSha256(utf8(v.secret), hex(v.bindingInput)))).toBe(v.binding);
    expect(() => verifyBinding(request, v.secret, target)).not.toThrow();

    const server = importServerKeyPair(v.algorithm, hex(v.serverPrivateKey));
    expect(h(server.publicKey)).toBe(v.serverPublicKey);
    const shared = server.deriveSharedSecret(request.publicKey);
    expect(h(shared)).toBe(v.sharedSecret);
    const context = keyContext(v.algorithm, request.publicKey, server.publicKey, target);
    expect(h(context)).toBe(v.keyContext);
    expect(h(hkdfSha256(shared, utf8(v.secret), context, 32))).toBe(v.aesKey);
    const sealed = sealPayload({
      request,
      serverPublicKey: server.publicKey,
      sharedSecret: shared,
      secret: v.secret,
      target,
      payload: v.payload,
      iv: hex(v.iv),
    });
    expect(h(shared)).toBe('00'.repeat(shared.length)); // the shared secret is wiped once used
    // Header form up to the reference server's default headerLimit, body form beyond it.
    if (v.responseBody === undefined) {
      expect(sealed.length).toBeLessThanOrEqual(DEFAULT_HEADER_LIMIT);
      expect(sealed).toBe(v.responseHeader);
    } else {
      expect(sealed.length).toBeGreaterThan(DEFAULT_HEADER_LIMIT);
      expect(splitResponse(sealed)).toEqual({ header: v.responseHeader, body: v.responseBody });
    }
  });

  it('client: request header and decryption of the response', async () => {
    const keys = await clientKeys(v);
    expect(await requestHeader(crypto.subtle, keys, v.secret, target)).toBe(v.requestHeader);
    expect(await openResponse(crypto.subtle, keys, v.secret, target, joinResponse(v.responseHeader, v.responseBody ?? ''))).toBe(v.payload);
  });

  // Web Crypto's own HKDF agrees with the two-HMAC HKDF both sides use, up to the 1024-byte
  // `info` that Node's HKDF accepts; beyond it, it refuses (why both sides compute HKDF as HMACs).
  const info = hex(v.keyContext);
  it(`client: Web Crypto HKDF ${info.length <= 1024 ? 'gives the same key as the server HKDF' : 'refuses this info of over 1024 bytes'}`, async () => {
    const ikm = await crypto.subtle.importKey('raw', hex(v.sharedSecret), 'HKDF', false, ['deriveBits']);
    const derive = crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: utf8(v.secret), info }, ikm, 256);
    if (info.length <= 1024) expect(h(await derive)).toBe(v.aesKey);
    else await expect(derive).rejects.toThrow();
  });

  it('server refuses the vector under another secret, method, path or header', () => {
    const request = parseRequest(v.requestHeader);
    for (const [secret, t] of [
      [`${v.secret}x`, target],
      [v.secret, { ...target, method: v.method === 'GET' ? 'POST' : 'GET' }],
      [v.secret, { ...target, path: `${v.path}x` }],
      [v.secret, { ...target, header: 'x-other' }],
    ] as const) {
      expect(() => verifyBinding(request, secret, t)).toThrow(
        expect.objectContaining({ code: 'ERR_TOKENSEC_SECRET_MISMATCH', status: 403 }),
      );
    }
  });

  it('client refuses the response under another secret or path', async () => {
    const keys = await clientKeys(v);
    const response = joinResponse(v.responseHeader, v.responseBody ?? '');
    await expect(openResponse(crypto.subtle, keys, `${v.secret}x`, target, response)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_DECRYPTION_FAILED',
    });
    await expect(openResponse(crypto.subtle, keys, v.secret, { ...target, path: '/elsewhere' }, response)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_DECRYPTION_FAILED',
    });
  });
});

// ---- the DPoP vectors (docs/PROTOCOL.md, "DPoP vectors") ----

interface ProofVector {
  name: string;
  alg: 'ES256' | 'EdDSA' | 'Ed25519';
  jwk: Record<string, string>;
  privateKey?: string;
  jkt: string;
  method: string;
  url: string;
  accessToken?: string;
  handshake?: string;
  claims: Record<string, unknown> & { iat: number };
  proof: string;
}

function dpopVectors(): {
  proofs: ProofVector[];
  htu: { url: string; htu: string; match: boolean }[];
  hosts: { valid: string[]; invalid: string[] };
  iatWindow: { now: number; maxAge: number; clockSkew: number; accepted: number[]; refused: number[] };
  claimsEdges: {
    name: string;
    method: string;
    url: string;
    iat: number;
    accepted: boolean;
    refusedFor?: string;
    claimsText: string;
    proof: string;
  }[];
} {
  const doc = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8');
  const block = defined(doc.split('<!-- dpop vectors: the test suite parses the JSON block below -->')[1], 'the DPoP vectors block');
  const start = block.indexOf('```json') + 7;
  return JSON.parse(block.slice(start, block.indexOf('\n```', start)));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DPoP vectors', () => {
  const dv = dpopVectors();
  const verifyOptions = (algorithms: DpopAlgorithm[]) => ({
    algorithms: acceptedAlgorithms(algorithms),
    maxAge: 60,
    clockSkew: 5,
    replayStore: memoryReplayStore(),
  });

  it('cover ES256, EdDSA, Ed25519, an API call with ath and nonce, and a handshake with tsh and tsb', () => {
    expect(new Set(dv.proofs.map((p) => p.alg))).toEqual(new Set(['ES256', 'EdDSA', 'Ed25519']));
    expect(dv.proofs.some((p) => p.claims.nonce && p.claims.ath)).toBe(true);
    expect(dv.proofs.some((p) => p.claims.tsb === true && p.claims.tsh)).toBe(true);
  });

  it.each(dv.proofs.map((p) => [p.name, p] as const))('%s', async (_, p) => {
    const [header, claims] = p.proof
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown);
    expect(header).toEqual({ typ: 'dpop+jwt', alg: p.alg, jwk: p.jwk });
    expect(claims).toEqual(p.claims);
    expect(p.jkt).toBe(await calculateJwkThumbprint(p.jwk));
    expect(p.claims.htu).toBe(canonicalHtu(p.url));
    // The browser client's htu for that URL is the same.
    expect(normalizeHtu(p.url)).toBe(p.claims.htu);
    // The access token names this proof's key (RFC 9449 §6): the server's cnf.jkt check passes.
    if (p.accessToken !== undefined) {
      const payload = JSON.parse(Buffer.from(p.accessToken.split('.')[1] ?? '', 'base64url').toString()) as { cnf?: { jkt?: string } };
      expect(payload.cnf?.jkt).toBe(p.jkt);
    }
    if (p.accessToken !== undefined) expect(p.claims.ath).toBe(createHash('sha256').update(p.accessToken).digest('base64url'));
    if (p.handshake !== undefined) expect(p.claims.tsh).toBe(createHash('sha256').update(p.handshake).digest('base64url'));
    // Ours, for a server that lists the algorithm by either of its names.
    fakeClock(p.claims.iat * 1000);
    for (const listed of p.alg === 'ES256' ? (['ES256'] as const) : (['EdDSA', 'Ed25519'] as const)) {
      const verified = await checkAndRecordProof(
        p.proof,
        { method: p.method, url: p.url, accessToken: p.accessToken, handshake: p.handshake },
        verifyOptions([listed]),
      );
      expect(verified.jkt).toBe(p.jkt);
    }
    // jose (which knows EdDSA; the fully-specified name is checked on the bytes below).
    if (p.alg !== 'Ed25519') {
      const { payload } = await jwtVerify(p.proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: [p.alg],
        currentDate: new Date(p.claims.iat * 1000),
      });
      expect(payload).toEqual(p.claims);
    }
    // Ed25519 is deterministic: the exact bytes, from the private key and the JSON as given.
    if (p.privateKey) {
      const input = p.proof.split('.').slice(0, 2).join('.');
      const key = createPrivateKey({ key: { ...p.jwk, d: p.privateKey }, format: 'jwk' });
      expect(`${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`).toBe(p.proof);
      expect(
        nodeVerify(
          null,
          Buffer.from(input),
          createPublicKey({ key: p.jwk, format: 'jwk' }),
          Buffer.from(p.proof.split('.')[2] ?? '', 'base64url'),
        ),
      ).toBe(true);
    }
  });

  it.each(dv.htu.map((c) => [c.url, c.htu, c.match] as const))('the URL %s and htu %s match: %s', async (url, htu, match) => {
    expect(canonicalHtu(htu) !== undefined && canonicalHtu(htu) === canonicalHtu(url)).toBe(match);
    // And through the verifier, with a proof jose signed.
    const key = await proofKey();
    const proof = await joseProof(key, { htm: 'GET', htu, iat: 1767225600 });
    fakeClock(1767225600 * 1000);
    const check = () => checkDpopProof(proof, { method: 'GET', url }, verifyOptions(['ES256']));
    if (match) expect(check).not.toThrow();
    else expect(check).toThrow(expect.objectContaining({ code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF', message: expect.stringMatching(/htu/) }));
  });

  it('covers the forms the WHATWG URL parser accepts and RFC 3986 refuses', () => {
    const refused = dv.htu.filter((c) => !c.match).map((c) => c.htu);
    for (const form of ['http://@', ':08080', '\\', '\t', 'token ', '2130706433', '127.000.000.001', '127.0.0.1.', 'café']) {
      expect(
        refused.some((htu) => htu.includes(form)),
        form,
      ).toBe(true);
    }
    // Each of them the WHATWG parser reads as a URL: a verifier built on it would accept them.
    for (const htu of refused.filter((h) => /@|08080|\\|\s|2130706433|000|\.:|\.\/|café|0x7f/.test(h)))
      expect(URL.canParse(htu), htu).toBe(true);
  });

  it.each([...dv.hosts.valid.map((h): [string, boolean] => [h, true]), ...dv.hosts.invalid.map((h): [string, boolean] => [h, false])])(
    'Host %j is host[:port]: %s',
    (host, valid) => {
      expect(isValidHost(host)).toBe(valid);
    },
  );

  it.each(dv.claimsEdges.map((e) => [e.name, e] as const))('claims: %s', (_, e) => {
    const [, claims = ''] = e.proof.split('.');
    // The claims text is what was signed (decoded leniently here, as the vector may be non-canonical on purpose).
    expect(Buffer.from(claims, 'base64url').toString('utf8')).toBe(e.claimsText);
    fakeClock(e.iat * 1000);
    const check = () => checkDpopProof(e.proof, { method: e.method, url: e.url }, verifyOptions(['EdDSA']));
    if (e.accepted) expect(check).not.toThrow();
    else {
      expect(check).toThrow(
        expect.objectContaining({ code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF', message: expect.stringContaining(e.refusedFor ?? '?') }),
      );
    }
  });

  it('the iat window: both edges accepted, one second beyond each refused', async () => {
    const { now, maxAge, clockSkew, accepted, refused } = dv.iatWindow;
    const key = await proofKey();
    fakeClock(now);
    const options = { algorithms: ['ES256'] as DpopAlgorithm[], maxAge, clockSkew, replayStore: memoryReplayStore() };
    const base = Math.floor(now / 1000);
    expect([Math.min(...accepted), Math.max(...accepted)]).toEqual([base - maxAge, base + clockSkew]);
    expect(refused).toEqual([base - maxAge - 1, base + clockSkew + 1]);
    for (const iat of accepted) {
      const proof = await joseProof(key, { htm: 'GET', htu: 'https://app.example/', iat });
      expect(() => checkDpopProof(proof, { method: 'GET', url: 'https://app.example/' }, options)).not.toThrow();
    }
    for (const iat of refused) {
      const proof = await joseProof(key, { htm: 'GET', htu: 'https://app.example/', iat });
      expect(() => checkDpopProof(proof, { method: 'GET', url: 'https://app.example/' }, options)).toThrow(/iat/);
    }
  });
});
