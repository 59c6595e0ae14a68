/**
 * Where DPoP proof ids (`jti`) are remembered for as long as a proof could be accepted, so that a
 * proof is accepted once (RFC 9449 §11.1). Proof ids go into an AtomicStore (`memoryStore()`,
 * `redisStore()`, or the app's own) under `jti:<jkt>:<jti>`, owned by the key's thumbprint. The
 * 3.0 names and the 3.0 `ReplayStore` contract stay accepted.
 */
import { memoryStore, type MemoryStoreOptions } from '../memory-store.js';
import { redisStore, type RedisStoreOptions } from '../redis-store.js';
import type { AtomicStore } from '../store.js';

/**
 * The 3.0 replay store contract, still accepted for `replayStore`: any AtomicStore will do too.
 *
 * @example
 * ```ts
 * const seen = new Set<string>();
 * const store: ReplayStore = { add: (key) => !seen.has(key) && Boolean(seen.add(key)) };
 * ```
 */
export interface ReplayStore {
  /**
   * Records `key` (`<jkt>:<jti>`) for `ttlSeconds`. Resolves true if the key was new, false if it
   * was already there (a replay). Must be atomic across every process that shares the store.
   */
  add(key: string, ttlSeconds: number): boolean | Promise<boolean>;
}

/** The 3.0 name of `memoryStore()`'s options. */
export type MemoryReplayStoreOptions = MemoryStoreOptions;

/** The 3.0 name of the clients `redisStore()` takes (now node-redis or ioredis). */
export type RedisLikeClient = RedisStoreOptions['client'];

/** The 3.0 name of `redisStore()`'s options. */
export type RedisReplayStoreOptions = RedisStoreOptions;

/**
 * The 3.0 name of `memoryStore()`, which it now returns.
 *
 * @deprecated Use `memoryStore()`.
 * @example
 * ```ts
 * import tokenSec from 'tokensec';
 * const store = tokenSec.memoryReplayStore({ max: 50_000 });
 * ```
 */
export function memoryReplayStore(options: MemoryReplayStoreOptions = {}): AtomicStore {
  return memoryStore(options);
}

/**
 * The 3.0 name of `redisStore()`, which it now returns (it also takes an ioredis client now).
 *
 * @deprecated Use `redisStore()`.
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import tokenSec from 'tokensec';
 * const client = createClient();
 * client.on('error', () => {});
 * const store = tokenSec.redisReplayStore({ client });
 * ```
 */
export function redisReplayStore(options: RedisReplayStoreOptions): AtomicStore {
  return redisStore(options);
}

const REPLAY_PREFIX = 'jti:';

/** The store key of a proof id. */
export const replayKey = (jkt: string, jti: string): string => `${REPLAY_PREFIX}${jkt}:${jti}`;

/** A 3.0 ReplayStore as an AtomicStore, for proof ids only: it sees `<jkt>:<jti>` as before. */
export function fromReplayStore(store: ReplayStore): AtomicStore {
  return {
    async addIfAbsent(key, _value, ttlSeconds) {
      const added = await store.add(key.startsWith(REPLAY_PREFIX) ? key.slice(REPLAY_PREFIX.length) : key, ttlSeconds);
      return added ? undefined : '1';
    },
    delete() {
      throw new TypeError('A 3.0 ReplayStore ({ add }) cannot delete keys: pass an AtomicStore (memoryStore(), redisStore()).');
    },
  };
}

/** One default store per process, shared by every middleware that was given none. */
let processStore: AtomicStore | undefined;
export const defaultStore = (): AtomicStore => (processStore ??= memoryStore());

/** `replayStore` as given: an AtomicStore, a 3.0 ReplayStore (wrapped), or undefined. */
export function asAtomicStore(given: unknown): AtomicStore | undefined {
  if (typeof given !== 'object' || given === null) return undefined;
  const store = given as Partial<AtomicStore & ReplayStore>;
  if (typeof store.addIfAbsent === 'function') return store as AtomicStore;
  if (typeof store.add === 'function') return fromReplayStore(store as ReplayStore);
  return undefined;
}
