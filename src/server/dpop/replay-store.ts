/**
 * Where DPoP proof ids (`jti`) are remembered for as long as a proof could be accepted, so that a
 * proof is accepted once (RFC 9449 §11.1). A small interface, a bounded in-memory store for one
 * process, and a Redis store for several processes.
 */

/**
 * Remembers keys for a while.
 *
 * @example
 * ```ts
 * const store: ReplayStore = { add: async (key, ttl) => (await myCache.setIfAbsent(key, ttl)) };
 * ```
 */
export interface ReplayStore {
  /**
   * Records `key` for `ttlSeconds`. Resolves true if the key was new, false if it was already
   * there (a replay). Must be atomic across every process that shares the store.
   */
  add(key: string, ttlSeconds: number): boolean | Promise<boolean>;
}

/**
 * Options of `memoryReplayStore()`.
 *
 * @example
 * ```ts
 * memoryReplayStore({ max: 200_000 });
 * ```
 */
export interface MemoryReplayStoreOptions {
  /** Most keys held at once. Default 100,000. */
  max?: number;
  /** For tests only: the clock, in milliseconds. */
  now?: () => number;
}

/**
 * A replay store in this process's memory: right for one server process. When it holds `max`
 * unexpired keys it refuses new ones (add resolves false, so proofs are refused) rather than
 * forget a key early, which would reopen replay; expired keys are dropped first.
 *
 * @example
 * ```ts
 * app.use('/api', tokenSec.dpop({ verifyToken, replayStore: memoryReplayStore({ max: 50_000 }) }));
 * ```
 */
export function memoryReplayStore(options: MemoryReplayStoreOptions = {}): ReplayStore {
  const max = options.max ?? 100_000;
  const now = options.now ?? Date.now;
  // Insertion order is expiry order only for equal TTLs; sweeps therefore scan from the oldest
  // and stop at the first unexpired key, and `has` checks expiry itself.
  const expiries = new Map<string, number>();
  const sweep = (time: number) => {
    for (const [key, expiry] of expiries) {
      if (expiry > time) break;
      expiries.delete(key);
    }
  };
  return {
    add(key, ttlSeconds) {
      const time = now();
      const known = expiries.get(key);
      if (known !== undefined && known > time) return false;
      if (expiries.size >= max) sweep(time);
      if (expiries.size >= max) return false;
      expiries.delete(key);
      expiries.set(key, time + ttlSeconds * 1000);
      return true;
    },
  };
}

/**
 * The part of a node-redis (v4 and later) client the Redis store uses.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const client: RedisLikeClient = await createClient({ url: 'redis://127.0.0.1:6379' }).connect();
 * ```
 */
export interface RedisLikeClient {
  set(key: string, value: string, options: { NX: true; EX: number }): Promise<string | null | unknown>;
}

/**
 * Options of `redisReplayStore()`.
 *
 * @example
 * ```ts
 * redisReplayStore({ client: createClient({ url: process.env.REDIS_URL }), prefix: 'myapp:dpop:' });
 * ```
 */
export interface RedisReplayStoreOptions {
  /** A connected node-redis client (the `redis` package, an optional peer dependency). */
  client: RedisLikeClient;
  /** Key prefix. Default `tokensec:jti:`. */
  prefix?: string;
}

/**
 * A replay store in Redis, shared by every process that uses the same server: `SET key 1 NX EX
 * ttl`, atomic on the Redis side.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const client = await createClient({ url: process.env.REDIS_URL }).connect();
 * app.use('/api', tokenSec.dpop({ verifyToken, replayStore: redisReplayStore({ client }) }));
 * ```
 */
export function redisReplayStore(options: RedisReplayStoreOptions): ReplayStore {
  const { client, prefix = 'tokensec:jti:' } = options ?? {};
  if (!client || typeof client.set !== 'function') {
    throw new TypeError('tokenSec.redisReplayStore(): option "client" must be a connected node-redis client (createClient().connect()).');
  }
  if (typeof prefix !== 'string') throw new TypeError('tokenSec.redisReplayStore(): option "prefix" must be a string.');
  return {
    async add(key, ttlSeconds) {
      return (await client.set(prefix + key, '1', { NX: true, EX: Math.max(1, Math.ceil(ttlSeconds)) })) === 'OK';
    },
  };
}
