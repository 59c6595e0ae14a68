/**
 * AtomicStore helpers for tests: a plain in-memory store whose size a test can read, and a barrier
 * that makes concurrent callers really overlap. The production stores are memoryStore() and
 * redisStore() (src/server).
 */
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
