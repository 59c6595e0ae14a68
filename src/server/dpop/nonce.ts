/**
 * Server-provided DPoP nonces (RFC 9449 §8), stateless: a nonce is an HMAC of the current time
 * window under a key made at startup, so every process with the same key agrees without storage.
 * The current and the previous window's nonces are accepted.
 */
import { createHmac, randomBytes } from 'node:crypto';

export interface NonceSource {
  /** The nonce to hand out now (the `DPoP-Nonce` response header). */
  current(): string;
  isValid(nonce: unknown): boolean;
}

/**
 * Options of server nonces.
 *
 * @example
 * ```ts
 * tokenSec.dpop({ verifyToken, nonce: { window: 60, key: process.env.DPOP_NONCE_KEY } });
 * ```
 */
export interface NonceOptions {
  /** Seconds a nonce stays current. Default 300. */
  window?: number;
  /** HMAC key shared by the processes of one app (at least 32 bytes). Default: random per process. */
  key?: string | Uint8Array;
  /** For tests only: the clock, in milliseconds. */
  now?: () => number;
}

export function nonceSource(options: NonceOptions = {}): NonceSource {
  const window = options.window ?? 300;
  const key = options.key === undefined ? randomBytes(32) : typeof options.key === 'string' ? Buffer.from(options.key) : options.key;
  const now = options.now ?? Date.now;
  const nonceFor = (slot: number) => createHmac('sha256', key).update(`tokensec dpop nonce ${slot}`).digest('base64url');
  const slot = () => Math.floor(now() / 1000 / window);
  return {
    current: () => nonceFor(slot()),
    isValid: (nonce) => typeof nonce === 'string' && (nonce === nonceFor(slot()) || nonce === nonceFor(slot() - 1)),
  };
}
