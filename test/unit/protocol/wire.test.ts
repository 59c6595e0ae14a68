import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bindingInput, keyContext } from '../../../src/protocol/context.js';
import { decodeBase64url, encodeBase64url, portableBase64url } from '../../../src/protocol/base64url.js';
import {
  MAX_PAYLOAD_BYTES,
  MAX_RESPONSE_LENGTH,
  VERSION,
  formatRequest,
  formatResponse,
  parseRequest,
  parseResponse,
} from '../../../src/protocol/wire.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('base64url', () => {
  it('matches Node for every length from 0 to 70 bytes, both ways', () => {
    for (let n = 0; n <= 70; n++) {
      const bytes = randomBytes(n);
      const text = encodeBase64url(bytes);
      expect(text).toBe(bytes.toString('base64url'));
      expect(Buffer.from(decodeBase64url(text)!)).toEqual(bytes);
    }
  });

  it('the portable codec (used in browsers) agrees with Node on every length from 0 to 70 bytes', () => {
    for (let n = 0; n <= 70; n++) {
      const bytes = randomBytes(n);
      expect(portableBase64url.encode(bytes)).toBe(bytes.toString('base64url'));
      expect(Buffer.from(portableBase64url.decode(bytes.toString('base64url')))).toEqual(bytes);
    }
  });

  it('encodes the RFC 4648 §10 test vectors', () => {
    const cases: [string, string][] = [
      ['', ''],
      ['f', 'Zg'],
      ['fo', 'Zm8'],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg'],
      ['fooba', 'Zm9vYmE'],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of cases) expect(encodeBase64url(Buffer.from(plain))).toBe(encoded);
  });

  it('uses the URL-safe alphabet', () => {
    expect(encodeBase64url(Uint8Array.of(0xfb, 0xff))).toBe('-_8');
  });

  it('refuses everything that is not the one canonical spelling', () => {
    for (const bad of ['Zg==', 'Zm9v+', 'Zm9v/', 'Z', 'Zh', 'Zm9', 'Zm8 ', 'Zé', 'Zm9vYmF=']) {
      expect(decodeBase64url(bad), bad).toBeUndefined();
    }
    // "Zh" decodes to "f" with a spare bit set: Node accepts it, we do not.
    expect(Buffer.from('Zh', 'base64url').toString()).toBe('f');
  });
});

describe('request header', () => {
  const publicKey = new Uint8Array(randomBytes(32));
  const binding = new Uint8Array(randomBytes(32));

  it('round-trips', () => {
    const value = formatRequest('x25519', publicKey, binding);
    expect(value).toMatch(/^v3\.x25519\.[\w-]{43}\.[\w-]{43}$/);
    expect(parseRequest(value)).toEqual({ algorithm: 'x25519', publicKey, publicKeyBase64url: value.split('.')[2], binding });
  });

  it('names each malformation with a stable code', () => {
    // Fixed bytes: with 0xff everywhere, a shortened field always has non-zero spare bits.
    const good = formatRequest('x25519', new Uint8Array(32).fill(255), new Uint8Array(32).fill(255));
    const [, , key = '', mac = ''] = good.split('.');
    expect(codeOf(() => parseRequest('x'.repeat(257)))).toBe('ERR_TOKENSEC_HEADER_TOO_LARGE');
    expect(codeOf(() => parseRequest(`v2.x25519.${key}.${mac}`))).toBe('ERR_TOKENSEC_UNSUPPORTED_VERSION');
    expect(codeOf(() => parseRequest('U2FsdGVkX19hYmNkZWZnaA=='))).toBe('ERR_TOKENSEC_UNSUPPORTED_VERSION');
    expect(codeOf(() => parseRequest('hello'))).toBe('ERR_TOKENSEC_MALFORMED_HEADER');
    expect(codeOf(() => parseRequest(`v3.x25519.${key}`))).toBe('ERR_TOKENSEC_MALFORMED_HEADER');
    expect(codeOf(() => parseRequest(`${good}.x`))).toBe('ERR_TOKENSEC_MALFORMED_HEADER');
    expect(codeOf(() => parseRequest(`v3.x448.${key}.${mac}`))).toBe('ERR_TOKENSEC_UNSUPPORTED_ALGORITHM');
    expect(codeOf(() => parseRequest(`v3.x25519.${key}=.${mac}`))).toBe('ERR_TOKENSEC_MALFORMED_HEADER');
    expect(codeOf(() => parseRequest(`v3.x25519.${key.slice(0, 42)}.${mac}`))).toBe('ERR_TOKENSEC_MALFORMED_HEADER');
    expect(codeOf(() => parseRequest(`v3.x25519.${key.slice(0, 40)}.${mac}`))).toBe('ERR_TOKENSEC_INVALID_PUBLIC_KEY');
    expect(codeOf(() => parseRequest(`v3.p256.${key}.${mac}`))).toBe('ERR_TOKENSEC_INVALID_PUBLIC_KEY');
    expect(codeOf(() => parseRequest(`v3.x25519.${key}.${mac.slice(0, 40)}`))).toBe('ERR_TOKENSEC_MALFORMED_HEADER');
    // a compressed or hybrid P-256 point is not the format Web Crypto exports
    const p256 = new Uint8Array(65).fill(7);
    expect(codeOf(() => parseRequest(formatRequest('p256', p256, binding)))).toBe('ERR_TOKENSEC_INVALID_PUBLIC_KEY');
  });

  it('never echoes the header value in its error message', () => {
    const value = `v3.x25519.${'A'.repeat(40)}SECRETISH.${'B'.repeat(43)}`;
    try {
      parseRequest(value);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain('SECRETISH');
    }
  });
});

describe('response header', () => {
  it('round-trips and checks lengths for the algorithm', () => {
    const response = {
      publicKey: new Uint8Array([4, ...randomBytes(64)]),
      iv: new Uint8Array(randomBytes(12)),
      ciphertext: new Uint8Array(randomBytes(40)),
    };
    const value = formatResponse(response);
    expect(parseResponse(value, 'p256')).toEqual(response);
    expect(parseResponse(value, 'x25519')).toBeUndefined();
    const [v, key, , ct] = value.split('.');
    expect(parseResponse([v, key, encodeBase64url(randomBytes(16)), ct].join('.'), 'p256')).toBeUndefined();
    expect(parseResponse([v, key, encodeBase64url(randomBytes(12)), encodeBase64url(randomBytes(15))].join('.'), 'p256')).toBeUndefined();
    expect(parseResponse(`v2${value.slice(2)}`, 'p256')).toBeUndefined();
    expect(parseResponse(`${value}.`, 'p256')).toBeUndefined();
    // A P-256 key that is not an uncompressed point (docs/PROTOCOL.md, "Client processing", step 2).
    expect(parseResponse(formatResponse({ ...response, publicKey: new Uint8Array([5, ...randomBytes(64)]) }), 'p256')).toBeUndefined();
  });
});

describe('bound bytes', () => {
  const target = { header: 'X-TokenSec-Handshake', method: 'post', path: '/a' };

  it('length-prefixes every field and normalises header and method case', () => {
    const input = bindingInput('x25519', Uint8Array.of(1, 2), target);
    const expected = Buffer.concat([
      Buffer.from('0013', 'hex'),
      Buffer.from('TokenSec v3 binding'),
      Buffer.from('0006', 'hex'),
      Buffer.from('x25519'),
      Buffer.from('00020102', 'hex'),
      Buffer.from('0000', 'hex'), // no DPoP key: an empty jkt
      Buffer.from('0014', 'hex'),
      Buffer.from('x-tokensec-handshake'),
      Buffer.from('0004', 'hex'),
      Buffer.from('POST'),
      Buffer.from('0002', 'hex'),
      Buffer.from('/a'),
    ]);
    expect(Buffer.from(input)).toEqual(expected);
  });

  it('differs for every field of the key context', () => {
    const base = keyContext('x25519', Uint8Array.of(1), Uint8Array.of(2), target);
    const variants = [
      keyContext('p256', Uint8Array.of(1), Uint8Array.of(2), target),
      keyContext('x25519', Uint8Array.of(3), Uint8Array.of(2), target),
      keyContext('x25519', Uint8Array.of(1), Uint8Array.of(3), target),
      keyContext('x25519', Uint8Array.of(1), Uint8Array.of(2), { ...target, header: 'x-other' }),
      keyContext('x25519', Uint8Array.of(1), Uint8Array.of(2), { ...target, method: 'GET' }),
      keyContext('x25519', Uint8Array.of(1), Uint8Array.of(2), { ...target, path: '/b' }),
      keyContext('x25519', Uint8Array.of(1), Uint8Array.of(2), { ...target, jkt: new Uint8Array(32) }),
      // moving a byte between adjacent fields must change the encoding too
      keyContext('x25519', Uint8Array.of(1, 2), new Uint8Array(0), target),
    ];
    for (const variant of variants) expect(Buffer.from(variant).equals(Buffer.from(base))).toBe(false);
  });
});

describe('MAX_RESPONSE_LENGTH', () => {
  it('is the longest response the grammar allows: version, three dots, a P-256 key (87), an IV (16), the largest payload and its 16-byte tag', () => {
    expect(MAX_RESPONSE_LENGTH).toBe(`${VERSION}...`.length + 87 + 16 + Math.ceil(((MAX_PAYLOAD_BYTES + 16) * 4) / 3));
    const longest = formatResponse({
      publicKey: new Uint8Array(65).fill(4),
      iv: new Uint8Array(12),
      ciphertext: new Uint8Array(MAX_PAYLOAD_BYTES + 16),
    });
    expect(longest.length).toBe(MAX_RESPONSE_LENGTH);
  });
});
