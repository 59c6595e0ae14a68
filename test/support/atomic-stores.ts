/**
 * Minimal real AtomicStores for tests (the production ones live in src/server): one in memory, one
 * over node-redis against a real redis-server (test/support/redis.ts). Neither is a mock: each does
 * the atomic add-if-absent the contract asks for, the Redis one with `SET key value NX EX ttl GET`
 * (Redis >= 7), which sets and reads back in one atomic command.
 */
import type { RedisClientType } from 'redis';
import type { AtomicStore } from '../../src/server/store.js';

/** A Map of key -> value with an expiry, checked on read. */
export function testMemoryStore(now: () => number = Date.now): AtomicStore & { size(): number } {
  const entries = new Map<string, { value: string; expires: number }>();
  return {
    addIfAbsent(key, value, ttlSeconds) {
      const existing = entries.get(key);
      if (existing && existing.expires > now()) return existing.value;
      entries.set(key, { value, expires: now() + ttlSeconds * 1000 });
      return undefined;
    },
    delete(key) {
      entries.delete(key);
    },
    size: () => entries.size,
  };
}

/** `SET key value NX EX ttl GET`: nil when this call set it, else the value that was there (unchanged). */
export function testRedisStore(client: Pick<RedisClientType, 'set' | 'del'>): AtomicStore {
  return {
    async addIfAbsent(key, value, ttlSeconds) {
      const earlier = await client.set(key, value, { condition: 'NX', expiration: { type: 'EX', value: ttlSeconds }, GET: true });
      return earlier === null ? undefined : String(earlier);
    },
    async delete(key) {
      await client.del(key);
    },
  };
}

/**
 * Holds every addIfAbsent until `parties` calls are waiting, then lets them run in order: two
 * first handshakes that are really concurrent (both read an unbound session before either binds).
 */
export function barrier(store: AtomicStore, parties: number): AtomicStore {
  const waiting: (() => void)[] = [];
  return {
    async addIfAbsent(key, value, ttlSeconds) {
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (waiting.length === parties) waiting.splice(0).forEach((go) => go());
      });
      return store.addIfAbsent(key, value, ttlSeconds);
    },
    delete: (key) => store.delete(key),
  };
}
