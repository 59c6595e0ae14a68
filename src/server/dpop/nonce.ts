/**
 * Server-provided DPoP nonces (RFC 9449 §8), on by default: they bound how long a proof signed
 * ahead of time stays good (RFC 9449 §11.1). Stateless: a nonce names its time window and carries
 * an HMAC of it under a key, so every process with the same key agrees without storage.
 *
 * The bound: a nonce handed out at time T names the window T falls in, and is accepted while that
 * window or the next one is current (one past window), so it is refused from at most 2 × window
 * after T. A script that ran once in the page at T, and signed a ladder of proofs dated ahead with
 * the nonce current then, has them all refused 2 × window (60 s by default) after T, plus the
 * difference between the clocks of the processes that hand out and check nonces.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { assertClock, checkInteger, checkOptions, describe, optionError } from '../options.js';

export interface NonceSource {
  /** The nonce to hand out now (the `DPoP-Nonce` response header). */
  current(): string;
  /**
   * Why a proof's `nonce` is refused: `missing` (none, or not one this key made), `stale` (one
   * this key made, whose windows have passed: the client had an old one), or undefined when it is
   * accepted.
   */
  problem(nonce: unknown): 'missing' | 'stale' | undefined;
  isValid(nonce: unknown): boolean;
}

/**
 * Options of server nonces.
 *
 * @example
 * ```ts
 * import tokenSec from 'tokensec';
 * const verifyToken = async () => ({ cnf: { jkt: 'a thumbprint' } });
 * tokenSec.dpop({ verifyToken, nonce: { window: 30, key: 'a secret of at least 32 bytes, shared by every process' } });
 * ```
 */
export interface NonceOptions {
  /**
   * Seconds a nonce stays current (a whole number, 1 to 86400). Default 30. The current and the
   * previous window's nonces are accepted, so a proof signed ahead of time is refused at most
   * 2 × window seconds after its nonce was handed out.
   */
  window?: number;
  /**
   * HMAC key, a string or bytes of at least 32 bytes, the same in every process of the app.
   * Default: the environment variable TOKENSEC_NONCE_KEY; without it, a random key per process,
   * which NODE_ENV=production refuses (several processes would refuse each other's nonces).
   */
  key?: string | Uint8Array;
  /** @deprecated Still accepted, undocumented, removed in 4.0: tests freeze the clock with vitest's fake timers (test/support/clock.ts). */
  now?: () => number;
}

/** The environment variable every middleware of a process reads its nonce key from by default. */
export const NONCE_KEY_ENV = 'TOKENSEC_NONCE_KEY';
/** Seconds a nonce stays current by default. */
export const DEFAULT_NONCE_WINDOW = 30;
const MIN_KEY_BYTES = 32;
const MAKE_KEY = `node -e "console.log(crypto.randomBytes(32).toString('base64url'))"`;
/** One random key per process, shared by every middleware of it that has no key of its own (outside production). */
let processKey: Buffer | undefined;

function keyOf(fn: string, name: string, value: unknown): Buffer {
  const key = typeof value === 'string' ? Buffer.from(value, 'utf8') : value instanceof Uint8Array ? Buffer.from(value) : undefined;
  if (!key) {
    throw optionError(fn, `${name} must be a string or a Uint8Array of at least ${MIN_KEY_BYTES} bytes, got ${describe(value)}.`);
  }
  if (key.length < MIN_KEY_BYTES) {
    throw optionError(
      fn,
      `${name} must be at least ${MIN_KEY_BYTES} bytes, got ${key.length}. Make one with: ${MAKE_KEY}, and give every process the same one.`,
    );
  }
  return key;
}

/** The key when the options give none: TOKENSEC_NONCE_KEY, else (not in production) the process's random one. */
function defaultKey(fn: string, prefix: string): Buffer {
  const fromEnv = process.env[NONCE_KEY_ENV];
  if (fromEnv) return keyOf(fn, `the environment variable ${NONCE_KEY_ENV}`, fromEnv);
  if (process.env.NODE_ENV === 'production') {
    throw optionError(
      fn,
      `server nonces are on by default (they bound how long a proof signed ahead of time stays good) and every process of the app must ` +
        `make them with the same key: set the environment variable ${NONCE_KEY_ENV} to a secret of at least ${MIN_KEY_BYTES} bytes, the same ` +
        `in every process (make one with: ${MAKE_KEY}), or pass option "${prefix}key". ` +
        `(Option "${prefix.slice(0, -1)}: false" turns nonces off: a proof signed ahead of time then lasts as long as the token.)`,
    );
  }
  return (processKey ??= randomBytes(MIN_KEY_BYTES));
}

/** `<window number, base 36>.<HMAC-SHA256 of it, base64url>` */
const NONCE = /^([0-9a-z]{1,10})\.([\w-]{43})$/;

/**
 * A nonce source from checked options: `fn` and `prefix` name the option in messages
 * (`tokenSec.dpop(): option "nonce.window" …`).
 */
export function nonceSource(options: NonceOptions = {}, fn = 'dpop', prefix = 'nonce.'): NonceSource {
  const given = checkOptions(fn, options, ['window', 'key', 'now'], prefix);
  const window = checkInteger(fn, `${prefix}window`, given.window, DEFAULT_NONCE_WINDOW, 1, 86_400, 'seconds');
  const key = given.key === undefined ? defaultKey(fn, prefix) : keyOf(fn, `option "${prefix}key"`, given.key);
  assertClock(fn, `${prefix}now`, given.now);
  const now = given.now ?? (() => Date.now());
  const macOf = (slot: number) => createHmac('sha256', key).update(`tokensec dpop nonce ${slot}`).digest();
  const slotNow = () => Math.floor(now() / 1000 / window);
  // The nonce of the current window, made once per window.
  let made: { slot: number; nonce: string } | undefined;
  const current = () => {
    const slot = slotNow();
    if (made?.slot !== slot) made = { slot, nonce: `${slot.toString(36)}.${macOf(slot).toString('base64url')}` };
    return made.nonce;
  };
  const problem = (nonce: unknown): 'missing' | 'stale' | undefined => {
    if (typeof nonce !== 'string') return 'missing';
    if (nonce === made?.nonce && made.slot === slotNow()) return undefined;
    const match = NONCE.exec(nonce);
    if (!match) return 'missing';
    const slot = parseInt(match[1] ?? '', 36);
    const mac = Buffer.from(match[2] ?? '', 'base64url');
    if (mac.length !== 32 || !timingSafeEqual(mac, macOf(slot))) return 'missing';
    const currentSlot = slotNow();
    // The next window too: a process whose clock runs a little ahead may have handed it out already.
    if (slot < currentSlot - 1) return 'stale';
    return slot <= currentSlot + 1 ? undefined : 'missing';
  };
  return { current, problem, isValid: (nonce) => problem(nonce) === undefined };
}

/**
 * A middleware's nonce option resolved: on by default (`undefined`, `true`, or nonce options),
 * off with `false`.
 */
export function resolveNonce(fn: string, value: unknown, prefix: string): NonceSource | undefined {
  if (value === false) return undefined;
  if (value !== undefined && value !== true && (typeof value !== 'object' || value === null)) {
    throw optionError(fn, `option "${prefix.slice(0, -1)}" must be true, false or nonce options, got ${describe(value)}.`);
  }
  return nonceSource(value === true || value === undefined ? {} : (value as NonceOptions), fn, prefix);
}
