/**
 * TokenSec protocol v2 wire format: header grammar, base64url and the bytes that keys and
 * ciphertexts are bound to. The one module shared by the server (node:crypto) and the browser
 * client (Web Crypto), so the two can never disagree. docs/PROTOCOL.md is its specification.
 *
 * No Node or DOM APIs beyond TextEncoder: this file is compiled into both builds.
 */
import { TokenSecError } from './errors.js';

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

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

export function encodeBase64url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest) {
    const n = (bytes[i] << 16) | (rest === 2 ? bytes[i + 1] << 8 : 0);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + (rest === 2 ? ALPHABET[(n >> 6) & 63] : '');
  }
  return out;
}

/**
 * Decodes unpadded base64url. Returns undefined for anything that is not the one canonical
 * encoding of some bytes (bad characters, padding, impossible length, non-zero spare bits), so
 * that every value has exactly one spelling on the wire.
 */
export function decodeBase64url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (text.length % 4 === 1) return undefined;
  const out = new Uint8Array((text.length * 3) >> 2);
  let bits = 0;
  let buffer = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? DECODE[c] : -1;
    if (v < 0) return undefined;
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (buffer >> bits) & 255;
    }
  }
  if (buffer & ((1 << bits) - 1)) return undefined;
  return out;
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
export function formatRequest(request: HandshakeRequest): string {
  return [VERSION, request.algorithm, encodeBase64url(request.publicKey), encodeBase64url(request.binding)].join('.');
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

/** Each field as a 2-byte big-endian length and its bytes, so no two field lists encode alike. */
function lengthPrefixed(fields: ReadonlyArray<string | Uint8Array>): Uint8Array<ArrayBuffer> {
  const chunks = fields.map((field) => (typeof field === 'string' ? utf8(field) : field));
  const out = new Uint8Array(chunks.reduce((n, chunk) => n + 2 + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    if (chunk.length > 0xffff) throw new RangeError('TokenSec context field longer than 65535 bytes');
    out[offset] = chunk.length >> 8;
    out[offset + 1] = chunk.length & 255;
    out.set(chunk, offset + 2);
    offset += 2 + chunk.length;
  }
  return out;
}

/** The message the client MACs with the secret to prove it holds it: HMAC-SHA256(secret, this). */
export function bindingInput(algorithm: Algorithm, clientPublicKey: Uint8Array, target: RequestTarget): Uint8Array<ArrayBuffer> {
  return lengthPrefixed([BINDING_LABEL, algorithm, clientPublicKey, target.header.toLowerCase(), target.method.toUpperCase(), target.path]);
}

/** HKDF `info` and AES-GCM additional data: ties the key and ciphertext to this exact exchange. */
export function keyContext(
  algorithm: Algorithm,
  clientPublicKey: Uint8Array,
  serverPublicKey: Uint8Array,
  target: RequestTarget,
): Uint8Array<ArrayBuffer> {
  return lengthPrefixed([
    KEY_LABEL,
    algorithm,
    clientPublicKey,
    serverPublicKey,
    target.header.toLowerCase(),
    target.method.toUpperCase(),
    target.path,
  ]);
}

/** HTTP field-name (RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
