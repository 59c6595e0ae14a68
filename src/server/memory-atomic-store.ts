/**
 * The default AtomicStore of session bindings: one process's memory. Small on purpose (the lead
 * merges it with the production memory store of the replay-store work): a Map of key -> value and
 * expiry, expired entries dropped as they are met, the oldest entry dropped when `max` is reached.
 *
 * Dropping a binding early is safe here: the binding is also mirrored into the server-side
 * session (`req.session.tokenSecJkt`), which is read first; the store only decides races.
 */
import type { AtomicStore } from './store.js';

export interface MemoryAtomicStoreOptions {
  /** Most entries held; the oldest is dropped to make room. Default 100,000. */
  max?: number;
  /** For tests only: the clock, in milliseconds. */
  now?: () => number;
}

/** An AtomicStore in this process's memory: atomic because one event loop runs each call to the end. */
export function memoryAtomicStore({ max = 100_000, now = Date.now }: MemoryAtomicStoreOptions = {}): AtomicStore {
  const entries = new Map<string, { value: string; expires: number }>();
  return {
    addIfAbsent(key, value, ttlSeconds) {
      const time = now();
      const existing = entries.get(key);
      if (existing && existing.expires > time) return existing.value;
      entries.delete(key);
      // Insertion order is age order: drop expired entries from the front, then the oldest if still full.
      for (const [oldKey, entry] of entries) {
        if (entry.expires > time && entries.size < max) break;
        entries.delete(oldKey);
      }
      entries.set(key, { value, expires: time + ttlSeconds * 1000 });
      return undefined;
    },
    delete(key) {
      entries.delete(key);
    },
  };
}

/** The binding store every handshake and `tokenSec.unbind()` share when the app names none. */
export const defaultBindingStore: AtomicStore = memoryAtomicStore();
