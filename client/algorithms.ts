/**
 * The client's algorithm tables: everything it knows about each key-agreement and each DPoP
 * signature algorithm is one row here, so no other module names an algorithm. A new algorithm is
 * a row (and its protocol name in src/protocol); a lookup of a name that is not a row is refused.
 */
import type { Algorithm } from '../src/protocol/wire.js';

/**
 * The algorithms the browser client signs with: ES256 (default) or EdDSA (Ed25519).
 *
 * @example
 * ```js
 * await TokenSec.rotateDpopKey({ algorithm: 'EdDSA' });
 * ```
 */
export type ClientDpopAlgorithm = 'ES256' | 'EdDSA';

/** Web Crypto's parameters for generateKey, importKey, sign and verify alike (each reads the members it needs). */
export type WebCryptoParams = { name: string; namedCurve?: string; hash?: string };

/** Key agreement for the handshake's ephemeral keys, by protocol name, in order of preference. */
export const KEY_AGREEMENT: Readonly<Record<Algorithm, WebCryptoParams>> = {
  x25519: { name: 'X25519' },
  p256: { name: 'ECDH', namedCurve: 'P-256' },
};

/** DPoP signatures, by JWS `alg`. */
export const DPOP_SIGNATURE: Readonly<Record<ClientDpopAlgorithm, WebCryptoParams>> = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  EdDSA: { name: 'Ed25519' },
};

/** Whether `name` is a row of `table` (an own key: never `toString` or another inherited name). */
export const isRow = <Name extends string>(table: Readonly<Record<Name, unknown>>, name: unknown): name is Name =>
  Object.hasOwn(table, name as PropertyKey);
