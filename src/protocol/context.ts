/**
 * The bytes a handshake is bound to: the HMAC binding's input, and the HKDF info that is also the
 * AES-GCM additional data. Shared by both sides, platform-neutral (only TextEncoder).
 */
import type { Algorithm } from './wire.js';

const BINDING_LABEL = 'TokenSec v3 binding';
const KEY_LABEL = 'TokenSec v3 key';
const NO_KEY = new Uint8Array(0);

const encoder = new TextEncoder();
export const utf8 = (text: string): Uint8Array<ArrayBuffer> => encoder.encode(text);

/**
 * Matches a string that has no exact UTF-8 encoding: with the u flag a surrogate pair is one
 * astral code point, so only an unpaired half matches (TextEncoder would turn it into U+FFFD).
 */
export const LONE_SURROGATE = /\p{Cs}/u;

/** Where a handshake was sent: both sides must compute these identically. */
export interface RequestTarget {
  /** Header name; compared in lower case. */
  header: string;
  /** HTTP method; compared in upper case. */
  method: string;
  /** Request path as sent on the request line, without query string or fragment. */
  path: string;
  /**
   * The raw 32-byte RFC 7638 thumbprint of the DPoP key whose proof came with the handshake;
   * absent (bound as zero bytes) when the handshake carried no proof.
   */
  jkt?: Uint8Array | undefined;
}

/**
 * label, algorithm, the public keys, the DPoP key's thumbprint, then the target, each field as a
 * 2-byte big-endian length and its bytes, so that no two field lists encode alike.
 */
function context(label: string, algorithm: Algorithm, publicKeys: Uint8Array[], target: RequestTarget): Uint8Array<ArrayBuffer> {
  const fields = [
    label,
    algorithm,
    ...publicKeys,
    target.jkt ?? NO_KEY,
    target.header.toLowerCase(),
    target.method.toUpperCase(),
    target.path,
  ].map((field) => (typeof field === 'string' ? utf8(field) : field));
  const out = new Uint8Array(fields.reduce((n, field) => n + 2 + field.length, 0));
  let offset = 0;
  for (const field of fields) {
    // The server refuses longer paths first (414); never truncate silently.
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
