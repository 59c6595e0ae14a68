/**
 * DBSC's default challenge store: a small in-memory AtomicStore for one process. Several
 * processes need a shared one (Redis, `SET key value NX EX ttl GET`); pass it as `challengeStore`.
 */
import { TokenSecError } from '../../protocol/errors.js';
import type { AtomicStore } from '../store.js';

/**
 * At most `max` unexpired keys; past that, addIfAbsent fails with 503 ERR_TOKENSEC_STORE_FULL
 * rather than forget a used challenge.
 */
export function memoryDbscChallengeStore({ max = 100_000, now = Date.now }: { max?: number; now?: () => number } = {}): AtomicStore {
  const entries = new Map<string, { value: string; expires: number }>();
  const sweep = (at: number) => {
    for (const [key, entry] of entries) if (entry.expires <= at) entries.delete(key);
  };
  return {
    addIfAbsent(key, value, ttlSeconds) {
      const at = now();
      const found = entries.get(key);
      if (found && found.expires > at) return found.value;
      if (entries.size >= max) sweep(at);
      if (entries.size >= max) {
        throw new TokenSecError('ERR_TOKENSEC_STORE_FULL', 'TokenSec DBSC challenge store is full; try again later.', 503);
      }
      entries.set(key, { value, expires: at + ttlSeconds * 1000 });
      return undefined;
    },
    delete(key) {
      entries.delete(key);
    },
  };
}
