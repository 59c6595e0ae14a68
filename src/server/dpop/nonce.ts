/**
 * Server-provided DPoP nonces (RFC 9449 §8), stateless: a nonce is an HMAC of the current time
 * window under a key, so every process with the same key agrees without storage. The current and
 * the previous window's nonces are accepted.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { assertClock, checkInteger, checkOptions, describe, optionError } from '../options.js';

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
 * import tokenSec from 'tokensec';
 * const verifyToken = async () => ({ cnf: { jkt: 'a thumbprint' } });
 * tokenSec.dpop({ verifyToken, nonce: { window: 60, key: 'a secret of at least 32 bytes, shared by every process' } });
 * ```
 */
export interface NonceOptions {
  /** Seconds a nonce stays current (a whole number, at least 1). Default 300. */
  window?: number;
  /**
   * HMAC key, a string or bytes of at least 32 bytes. Give every process of an app the same key,
   * or a nonce one process handed out is refused by another. Default: random per process.
   */
  key?: string | Uint8Array;
  /** @deprecated Still accepted, undocumented, removed in 4.0: tests freeze the clock with vitest's fake timers (test/support/clock.ts). */
  now?: () => number;
}

const MIN_KEY_BYTES = 32;

/**
 * A nonce source from checked options: `fn` and `prefix` name the option in messages
 * (`tokenSec.dpop(): option "nonce.window" …`).
 */
export function nonceSource(options: NonceOptions = {}, fn = 'dpop', prefix = 'nonce.'): NonceSource {
  const given = checkOptions(fn, options, ['window', 'key', 'now'], prefix);
  const window = checkInteger(fn, `${prefix}window`, given.window, 300, 1, 86_400, 'seconds');
  const keyOption = given.key;
  let key: Buffer;
  if (keyOption === undefined) key = randomBytes(MIN_KEY_BYTES);
  else if (typeof keyOption === 'string') key = Buffer.from(keyOption, 'utf8');
  else if (keyOption instanceof Uint8Array) key = Buffer.from(keyOption);
  else
    throw optionError(
      fn,
      `option "${prefix}key" must be a string or a Uint8Array of at least ${MIN_KEY_BYTES} bytes, got ${describe(keyOption)}.`,
    );
  if (key.length < MIN_KEY_BYTES) {
    throw optionError(
      fn,
      `option "${prefix}key" must be at least ${MIN_KEY_BYTES} bytes, got ${key.length}. Make one with: node -e "console.log(crypto.randomBytes(32).toString('base64url'))", and give every process the same one.`,
    );
  }
  assertClock(fn, `${prefix}now`, given.now);
  const now = given.now ?? (() => Date.now());
  const nonceFor = (slot: number) => createHmac('sha256', key).update(`tokensec dpop nonce ${slot}`).digest('base64url');
  const slot = () => Math.floor(now() / 1000 / window);
  return {
    current: () => nonceFor(slot()),
    isValid: (nonce) => typeof nonce === 'string' && (nonce === nonceFor(slot()) || nonce === nonceFor(slot() - 1)),
  };
}
