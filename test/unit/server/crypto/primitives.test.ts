/**
 * The server's crypto primitives: HKDF and key agreement against the RFCs,
 * and key material wiped once used.
 */
import { hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../../../src/protocol/context.js';
import {
  RandomPool,
  deriveResponseKey,
  encryptPayload,
  generateServerKeyPair,
  hkdfSha256,
  importServerKeyPair,
  verifyBinding,
} from '../../../../src/server/crypto/primitives.js';
import { SMALL_ORDER_POINTS, hex, protocolVectors } from '../../../support/helpers.js';
import { parseRequest } from '../../../../src/protocol/wire.js';

const h = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('HKDF-SHA256 against RFC 5869 appendix A', () => {
  // A.1, A.2 and A.3: the SHA-256 test cases.
  const cases = [
    {
      ikm: '0b'.repeat(22),
      salt: '000102030405060708090a0b0c',
      info: 'f0f1f2f3f4f5f6f7f8f9',
      length: 42,
      okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    },
    {
      ikm: Array.from({ length: 80 }, (_, i) => i.toString(16).padStart(2, '0')).join(''),
      salt: Array.from({ length: 80 }, (_, i) => (0x60 + i).toString(16).padStart(2, '0')).join(''),
      info: Array.from({ length: 80 }, (_, i) => (0xb0 + i).toString(16).padStart(2, '0')).join(''),
      length: 82,
      okm: 'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
    },
    {
      ikm: '0b'.repeat(22),
      salt: '',
      info: '',
      length: 42,
      okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    },
  ];
  it.each(cases.map((c, i) => [i + 1, c] as const))('test case %i', (_, c) => {
    expect(h(hkdfSha256(hex(c.ikm), hex(c.salt), hex(c.info), c.length))).toBe(c.okm);
  });
});

describe('key agreement against the RFCs', () => {
  it('X25519: RFC 7748 §6.1', () => {
    const alice = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
    const bob = importServerKeyPair('x25519', hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
    expect(h(bob.publicKey)).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const alicePublic = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(h(bob.deriveSharedSecret(alicePublic))).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    expect(h(importServerKeyPair('x25519', hex(alice)).publicKey)).toBe(h(alicePublic));
  });

  it('P-256: RFC 5903 §8.1', () => {
    const r = importServerKeyPair('p256', hex('c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53'));
    expect(h(r.publicKey)).toBe(
      '04d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf6356fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab',
    );
    const gi = hex(
      '04dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c37725811805271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3',
    );
    expect(h(r.deriveSharedSecret(gi))).toBe('d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de');
  });

  it.each(SMALL_ORDER_POINTS)('X25519 refuses the small-order point %s', (point) => {
    const server = generateServerKeyPair('x25519');
    expect(() => server.deriveSharedSecret(hex(point))).toThrow(
      expect.objectContaining({ code: 'ERR_TOKENSEC_INVALID_PUBLIC_KEY', status: 400 }),
    );
  });

  it('P-256 refuses a point that is not on the curve', () => {
    const server = generateServerKeyPair('p256');
    const offCurve = new Uint8Array(65).fill(1);
    offCurve[0] = 4;
    expect(() => server.deriveSharedSecret(offCurve)).toThrow(expect.objectContaining({ code: 'ERR_TOKENSEC_INVALID_PUBLIC_KEY' }));
  });

  it('makes a fresh key pair every time', () => {
    for (const algorithm of ['x25519', 'p256'] as const) {
      expect(h(generateServerKeyPair(algorithm).publicKey)).not.toBe(h(generateServerKeyPair(algorithm).publicKey));
    }
  });
});

// The same values as leaks.test.ts: what must not outlive its use.
const SECRET = 'S3CRET-value-that-must-not-leak';
const PAYLOAD = 'PAYLOAD-eyJzdWIiOiJsZWFrIn0-must-not-leak';
const TARGET = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };

describe('key material does not outlive its use on the server', () => {
  it('the random pool wipes the bytes it hands out, and refills from the CSPRNG when spent', () => {
    const pool = new RandomPool(64);
    const first = pool.take(32);
    expect(first.some((byte) => byte !== 0)).toBe(true);
    expect(pool.buffer.subarray(0, 32).every((byte) => byte === 0)).toBe(true);
    const rest = pool.buffer.subarray(32);
    expect(rest.some((byte) => byte !== 0)).toBe(true); // not handed out yet
    const second = pool.take(32);
    expect(second).toEqual(Buffer.from(second)); // a copy, not a view into the pool
    expect(pool.buffer.every((byte) => byte === 0)).toBe(true);
    const third = pool.take(32); // spent: refilled
    expect(third.equals(first) || third.equals(second)).toBe(false);
    expect(pool.buffer.subarray(32).some((byte) => byte !== 0)).toBe(true);
  });

  it('deriving the response key wipes the shared secret; encrypting wipes the key', () => {
    const server = generateServerKeyPair('x25519');
    const client = generateServerKeyPair('x25519');
    const sharedSecret = server.deriveSharedSecret(client.publicKey);
    expect(sharedSecret.some((byte) => byte !== 0)).toBe(true);
    const key = deriveResponseKey({
      request: { algorithm: 'x25519', publicKey: client.publicKey },
      serverPublicKey: server.publicKey,
      sharedSecret,
      secret: SECRET,
      target: TARGET,
    });
    expect(sharedSecret.every((byte) => byte === 0)).toBe(true);
    expect(key.key.some((byte) => byte !== 0)).toBe(true);
    expect(encryptPayload(key, PAYLOAD)).toMatch(/^v3\./);
    expect(key.key.every((byte) => byte === 0)).toBe(true);
  });

  it('HKDF wipes its PRK and every T(i) block; the output, in a buffer of its own, is RFC 5869 HKDF', () => {
    const ikm = Buffer.alloc(32, 7);
    const salt = Buffer.from('salt');
    const info = Buffer.from('info');
    for (const length of [32, 42, 82]) {
      const trace: Uint8Array[] = [];
      const okm = hkdfSha256(ikm, salt, info, length, trace);
      expect(okm).toEqual(Buffer.from(hkdfSync('sha256', ikm, salt, info, length)));
      expect(okm.buffer.byteLength).toBe(length); // its own buffer, not a view of the blocks
      expect(trace).toHaveLength(1 + Math.ceil(length / 32)); // the PRK and each block
      for (const buffer of trace) expect(buffer.every((byte) => byte === 0)).toBe(true);
    }
  });

  it('deriving the response key wipes the secret bytes, the PRK and the HKDF block: only the key is left', () => {
    const server = generateServerKeyPair('x25519');
    const client = generateServerKeyPair('x25519');
    const sharedSecret = server.deriveSharedSecret(client.publicKey);
    const trace: Uint8Array[] = [];
    const key = deriveResponseKey({
      request: { algorithm: 'x25519', publicKey: client.publicKey },
      serverPublicKey: server.publicKey,
      sharedSecret,
      secret: SECRET,
      target: TARGET,
      trace,
    });
    expect(trace).toHaveLength(3); // the secret's bytes (HKDF salt), the PRK, T(1)
    for (const buffer of [sharedSecret, ...trace]) expect(buffer.every((byte) => byte === 0)).toBe(true);
    expect(key.key.some((byte) => byte !== 0)).toBe(true);
    expect(
      Buffer.from(key.key).equals(
        Buffer.from(hkdfSync('sha256', server.deriveSharedSecret(client.publicKey), utf8(SECRET), key.context, 32)),
      ),
    ).toBe(true);
  });

  it('a payload refused at encryption still wipes the key', () => {
    const server = generateServerKeyPair('x25519');
    const client = generateServerKeyPair('x25519');
    const key = deriveResponseKey({
      request: { algorithm: 'x25519', publicKey: client.publicKey },
      serverPublicKey: server.publicKey,
      sharedSecret: server.deriveSharedSecret(client.publicKey),
      secret: SECRET,
      target: TARGET,
    });
    expect(() => encryptPayload(key, 'x'.repeat(6145))).toThrow(expect.objectContaining({ code: 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE' }));
    expect(key.key.every((byte) => byte === 0)).toBe(true);
  });
});

describe('the secret encoded once', () => {
  it.each(protocolVectors().map((v) => [v.name, v] as const))(
    '%s: as bytes, the same binding and key as a string; the bytes left to the caller',
    (_, v) => {
      const request = parseRequest(v.requestHeader);
      const target = {
        header: v.header,
        method: v.method,
        path: v.path,
        jkt: v.jkt ? new Uint8Array(Buffer.from(v.jkt, 'base64url')) : undefined,
      };
      const bytes = new TextEncoder().encode(v.secret);
      expect(() => verifyBinding(request, bytes, target)).not.toThrow();
      expect(() => verifyBinding(request, v.secret, target)).not.toThrow();
      const input = { algorithm: v.algorithm, publicKey: request.publicKey, target };
      const agreement = () => {
        const pair = importServerKeyPair(v.algorithm, hex(v.serverPrivateKey));
        return { serverPublicKey: pair.publicKey, sharedSecret: pair.deriveSharedSecret(request.publicKey) };
      };
      expect(Buffer.from(deriveResponseKey({ request: input, ...agreement(), secret: bytes, target }).key).toString('hex')).toBe(v.aesKey);
      expect(Buffer.from(deriveResponseKey({ request: input, ...agreement(), secret: v.secret, target }).key).toString('hex')).toBe(
        v.aesKey,
      );
      expect(new TextDecoder().decode(bytes)).toBe(v.secret);
    },
  );
});
