/**
 * TokenSec protocol v2 wire format: header grammar, base64url and the bytes that keys and
 * ciphertexts are bound to. The one module shared by the server (node:crypto) and the browser
 * client (Web Crypto), so the two can never disagree. docs/PROTOCOL.md is its specification.
 *
 * It runs in both builds, so it uses only what browsers and Node share (TextEncoder, atob, btoa);
 * on the server, native-base64url.ts swaps in Node's faster Buffer codec.
 */
import { TokenSecError } from './errors.js';
import { nativeBase64url } from './native-base64url.js';

export const VERSION = 'v2';
export const DEFAULT_HEADER = 'x-tokensec-handshake';
/** Where the client sends the CSRF token, and where the server takes its default secret from. */
export const CSRF_HEADER = 'x-csrf-token';

export type Algorithm = 'x25519' | 'p256';
/** Raw public key sizes: X25519 (RFC 7748) and an uncompressed P-256 point (SEC 1: 0x04 || X || Y). */
export const PUBLIC_KEY_LENGTH: Readonly<Record<Algorithm, number>> = { x25519: 32, p256: 65 };
export const BINDING_LENGTH = 32; // HMAC-SHA256
export const IV_LENGTH = 12; // AES-GCM's 96-bit nonce
export const TAG_LENGTH = 16;
/** A v2 request header is at most 141 characters (P-256); anything much longer is refused unparsed. */
export const MAX_REQUEST_HEADER_LENGTH = 256;
/** Keeps the response header under ~8.3 KB: proxies and browsers commonly cap one header near 8 KB. */
export const MAX_PAYLOAD_BYTES = 6144;

const BINDING_LABEL = 'TokenSec v2 binding';
const KEY_LABEL = 'TokenSec v2 key';

const encoder = new TextEncoder();
export const utf8 = (text: string): Uint8Array<ArrayBuffer> => encoder.encode(text);

// ---- base64url (RFC 4648 §5), no padding, canonical only ----

/** The portable codec, on atob/btoa: small in the browser bundle (a lookup table cost ~400 bytes). */
export const portableBase64url = {
  encode: (bytes: Uint8Array): string =>
    btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''),
  decode: (text: string): Uint8Array<ArrayBuffer> =>
    Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)),
};

const codec = nativeBase64url ?? portableBase64url;

export const encodeBase64url = (bytes: Uint8Array): string => codec.encode(bytes);

/**
 * Decodes unpadded base64url. Returns undefined for anything that is not the one canonical
 * encoding of some bytes (bad characters, padding, impossible length, non-zero spare bits), so
 * that every value has exactly one spelling on the wire.
 */
export function decodeBase64url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[\w-]*$/.test(text) || text.length % 4 === 1) return undefined;
  const bytes = codec.decode(text);
  // Both decoders ignore non-zero spare bits in the last character; re-encoding exposes them.
  return codec.encode(bytes) === text ? bytes : undefined;
}

// ---- headers ----

export interface HandshakeRequest {
  algorithm: Algorithm;
  publicKey: Uint8Array<ArrayBuffer>;
  binding: Uint8Array<ArrayBuffer>;
}

export interface HandshakeResponse {
  publicKey: Uint8Array<ArrayBuffer>;
  iv: Uint8Array<ArrayBuffer>;
  /** AES-GCM ciphertext followed by its 16-byte tag. */
  ciphertext: Uint8Array<ArrayBuffer>;
}

/** `v2.<algorithm>.<client public key>.<binding>` */
export function formatRequest(algorithm: Algorithm, publicKey: Uint8Array, binding: Uint8Array): string {
  return [VERSION, algorithm, encodeBase64url(publicKey), encodeBase64url(binding)].join('.');
}

/** `v2.<server public key>.<iv>.<ciphertext and tag>` */
export function formatResponse(response: HandshakeResponse): string {
  return [VERSION, encodeBase64url(response.publicKey), encodeBase64url(response.iv), encodeBase64url(response.ciphertext)].join('.');
}

// Messages name what is wrong and never echo the value: the header may be logged.
const malformed = (what: string) =>
  new TokenSecError('ERR_TOKENSEC_MALFORMED_HEADER', `Malformed TokenSec handshake header: ${what}.`, 400);

/** Parses a request header on the server; throws a 4xx TokenSecError for anything else. */
export function parseRequest(value: string): HandshakeRequest {
  if (value.length > MAX_REQUEST_HEADER_LENGTH) {
    throw new TokenSecError(
      'ERR_TOKENSEC_HEADER_TOO_LARGE',
      `TokenSec handshake header is longer than ${MAX_REQUEST_HEADER_LENGTH} characters.`,
      431,
    );
  }
  const parts = value.split('.');
  // The 2015 client sent CryptoJS output: base64 of "Salted__..." ("U2FsdGVkX1...").
  const legacy = value.startsWith('U2FsdGVkX1');
  if (legacy || (parts[0] !== VERSION && /^v\d{1,3}$/.test(parts[0]))) {
    throw new TokenSecError(
      'ERR_TOKENSEC_UNSUPPORTED_VERSION',
      legacy
        ? 'TokenSec handshake from a 0.x (2015) client; serve the v2 client with tokenSec.client().'
        : `Unsupported TokenSec protocol version; this server speaks ${VERSION}.`,
      400,
    );
  }
  if (parts[0] !== VERSION) throw malformed(`expected it to start with "${VERSION}."`);
  if (parts.length !== 4) throw malformed(`expected 4 dot-separated fields, got ${parts.length}`);
  const algorithm = parts[1];
  if (algorithm !== 'x25519' && algorithm !== 'p256') {
    throw new TokenSecError('ERR_TOKENSEC_UNSUPPORTED_ALGORITHM', 'Unsupported TokenSec key agreement algorithm; expected x25519 or p256.', 400);
  }
  const publicKey = decodeBase64url(parts[2]);
  const binding = decodeBase64url(parts[3]);
  if (!publicKey) throw malformed('public key is not canonical base64url');
  if (!binding) throw malformed('binding is not canonical base64url');
  if (publicKey.length !== PUBLIC_KEY_LENGTH[algorithm] || (algorithm === 'p256' && publicKey[0] !== 4)) {
    throw new TokenSecError(
      'ERR_TOKENSEC_INVALID_PUBLIC_KEY',
      `Invalid ${algorithm} public key: expected ${algorithm === 'p256' ? 'an uncompressed 65-byte point' : '32 bytes'}.`,
      400,
    );
  }
  if (binding.length !== BINDING_LENGTH) throw malformed(`binding must be ${BINDING_LENGTH} bytes`);
  return { algorithm, publicKey, binding };
}

/** Parses a response header in the client; returns undefined if it is not a well-formed v2 response. */
export function parseResponse(value: string, algorithm: Algorithm): HandshakeResponse | undefined {
  const parts = value.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) return undefined;
  const publicKey = decodeBase64url(parts[1]);
  const iv = decodeBase64url(parts[2]);
  const ciphertext = decodeBase64url(parts[3]);
  if (!publicKey || !iv || !ciphertext) return undefined;
  if (publicKey.length !== PUBLIC_KEY_LENGTH[algorithm] || iv.length !== IV_LENGTH || ciphertext.length < TAG_LENGTH) {
    return undefined;
  }
  return { publicKey, iv, ciphertext };
}

// ---- what the binding, the key and the ciphertext are bound to ----

/** Where a handshake was sent: both sides must compute these identically. */
export interface RequestTarget {
  /** Header name; compared in lower case. */
  header: string;
  /** HTTP method; compared in upper case. */
  method: string;
  /** Request path as sent on the request line, without query string or fragment. */
  path: string;
}

/**
 * label, algorithm, the public keys, then the target, each field as a 2-byte big-endian length
 * and its bytes, so that no two field lists encode alike.
 */
function context(label: string, algorithm: Algorithm, publicKeys: Uint8Array[], target: RequestTarget): Uint8Array<ArrayBuffer> {
  const fields = [label, algorithm, ...publicKeys, target.header.toLowerCase(), target.method.toUpperCase(), target.path].map((field) =>
    typeof field === 'string' ? utf8(field) : field,
  );
  const out = new Uint8Array(fields.reduce((n, field) => n + 2 + field.length, 0));
  let offset = 0;
  for (const field of fields) {
    // Cannot happen for real requests (Node caps the request line at 16 KB); never truncate silently.
    if (field.length > 0xffff) throw new RangeError();
    out[offset] = field.length >> 8;
    out[offset + 1] = field.length & 255;
    out.set(field, offset + 2);
    offset += 2 + field.length;
  }
  return out;
}

/** The message the client MACs with the secret to prove it holds it: HMAC-SHA256(secret, this). */
export const bindingInput = (algorithm: Algorithm, clientPublicKey: Uint8Array, target: RequestTarget) =>
  context(BINDING_LABEL, algorithm, [clientPublicKey], target);

/** HKDF `info` and AES-GCM additional data: ties the key and ciphertext to this exact exchange. */
export const keyContext = (algorithm: Algorithm, clientPublicKey: Uint8Array, serverPublicKey: Uint8Array, target: RequestTarget) =>
  context(KEY_LABEL, algorithm, [clientPublicKey, serverPublicKey], target);

/** HTTP field-name (RFC 9110 token). */
export const HEADER_NAME = /^[\w!#$%&'*+.^`|~-]+$/;
