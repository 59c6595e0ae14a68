/**
 * The one atomic operation TokenSec needs from shared state: add a key unless it is there.
 * Replay ids (RFC 9449 §11.1), a session's first DPoP binding and DBSC challenges all go through
 * it, so one store serves every process of an app: memory for one process, Redis (`SET … NX`)
 * for several.
 */
import { TokenSecError } from '../protocol/errors.js';
import { checkInteger, optionError, type MaybePromise } from './options.js';

/**
 * Shared state with one atomic operation.
 *
 * @example
 * ```ts
 * const earlier = await store.addIfAbsent('bind:' + sessionId, jkt, 86_400);
 * const bound = earlier ?? jkt; // the key the session is bound to, whoever won the race
 * ```
 */
export interface AtomicStore {
  /**
   * Sets `key` to `value` for `ttlSeconds` unless it already holds an unexpired value, atomically
   * across every process that shares the store. Resolves `undefined` when this call set it, or the
   * value that was already there (which stays unchanged). `owner`, when given, names who the key
   * is stored for (a DPoP key's thumbprint, for proof ids): a store with a size limit may use it
   * to share its room fairly (`memoryStore()` does); others ignore it. `since`, when given, is the
   * earliest time (seconds since the epoch) the key could have been set before (a proof id: the
   * proof's `iat` minus `clockSkew`): a store that knows it lost its data after that time refuses
   * a key it does not hold with 503 ERR_TOKENSEC_STORE_RESTARTED (`redisStore()` does, see
   * restart-guard.ts) rather than answer that it never saw it.
   */
  addIfAbsent(key: string, value: string, ttlSeconds: number, owner?: string, since?: number): MaybePromise<string | undefined>;
  /** Removes `key` (a session unbound at logout). Resolves once it is gone. */
  delete(key: string): MaybePromise<void>;
  /**
   * Optional, for a store with a size limit: `owner` (a DPoP key's thumbprint) is bound, to a
   * session (the handshake) or by a verified access token's `cnf.jkt` (`dpop()`), for `ttlSeconds`.
   * TokenSec calls it before recording that key's proof id, so a full store can keep room for
   * bound keys rather than only for keys that recorded an id recently. `memoryStore()` keeps a
   * few keys' room for each (`KEPT_PER_BOUND_OWNER`); a store without it shares its room as it does.
   */
  markBound?(owner: string, ttlSeconds: number): MaybePromise<void>;
}

/**
 * Runs one store call with a time limit: a store that fails or does not answer within
 * `timeoutMs` becomes a 503 ERR_TOKENSEC_STORE_UNAVAILABLE, never a hang and never a refusal
 * that blames the client. The cause is kept on the error but never its key or value.
 */
export function callStore<T>(call: () => MaybePromise<T>, timeoutMs: number): Promise<T> {
  const unavailable = (cause?: unknown) =>
    new TokenSecError('ERR_TOKENSEC_STORE_UNAVAILABLE', 'TokenSec store did not answer; try again later.', 503, { cause });
  const failed = (cause: unknown) => (cause instanceof TokenSecError ? cause : unavailable(cause));
  let answer: MaybePromise<T>;
  try {
    answer = call();
  } catch (cause) {
    return Promise.reject(failed(cause));
  }
  // A store that answers at once (memoryStore()) needs no timer.
  if (typeof (answer as { then?: unknown } | undefined)?.then !== 'function') return Promise.resolve(answer);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(unavailable()), timeoutMs);
    Promise.resolve(answer).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (cause: unknown) => {
        clearTimeout(timer);
        reject(failed(cause));
      },
    );
  });
}

/** Milliseconds a store call may take by default (option `storeTimeout`). */
export const DEFAULT_STORE_TIMEOUT = 1000;

/** Whether `value` has an AtomicStore's two methods. */
export function isAtomicStore(value: unknown): value is AtomicStore {
  const store = value as Partial<AtomicStore> | null;
  return typeof store === 'object' && store !== null && typeof store.addIfAbsent === 'function' && typeof store.delete === 'function';
}

/**
 * A store option, checked when its middleware is created: undefined stays undefined (the caller
 * has a default); anything else must be an AtomicStore, or what `adapt` makes of it (the 3.0
 * ReplayStore), else a TypeError saying that the option must be `what`.
 */
export function checkStore(
  fn: string,
  name: string,
  value: unknown,
  what = 'an AtomicStore: an object with addIfAbsent(key, value, ttlSeconds) and delete(key)',
  adapt: (value: unknown) => AtomicStore | undefined = (given) => (isAtomicStore(given) ? given : undefined),
): AtomicStore | undefined {
  if (value === undefined) return undefined;
  const store = adapt(value);
  if (!store) throw optionError(fn, `option "${name}" must be ${what}.`);
  return store;
}

/** A `storeTimeout` option: the milliseconds a store call may take, 1 to 60000, default 1000. */
export function checkStoreTimeout(fn: string, name: string, value: unknown): number {
  return checkInteger(fn, name, value, DEFAULT_STORE_TIMEOUT, 1, 60_000, 'milliseconds');
}
