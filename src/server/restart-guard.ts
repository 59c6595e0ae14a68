/**
 * The restart guard of a shared store: how a Redis that lost its data (restarted without
 * persistence, failed over to an empty replica, flushed, the marker evicted) is noticed, and what
 * is refused then. The store keeps one marker key, `<random>:<milliseconds>`, written the first
 * time a store call finds it missing and never given a TTL. Every add reads it in the same atomic
 * script that sets the key, so a store that lost its data finds the marker gone at its next add,
 * writes a new one dated now (the notice), and every process reads that same date afterwards.
 *
 * A key that could have been set before the notice (a proof id whose proof could have been
 * accepted then: `iat − clockSkew` earlier than the notice) is refused with 503
 * ERR_TOKENSEC_STORE_RESTARTED, not answered "absent": the store cannot tell whether it saw it.
 * That only ever lasts one acceptance window (maxAge + clockSkew) after the notice: later, such a
 * proof is too old anyway. A fresh proof passes once it is dated `clockSkew` seconds after the
 * notice; `Retry-After` says when.
 */
import { randomBytes } from 'node:crypto';
import { TokenSecError } from '../protocol/errors.js';

/**
 * KEYS[1] the marker, KEYS[2] the key; ARGV: value, ttl seconds, a new marker. Sets the marker when
 * it is missing, then the key unless it is there; answers { marker, the value found or nil }.
 * Both keys must be in one slot on a Redis Cluster (a hash tag).
 */
export const ADD_WITH_MARKER_SCRIPT = `local marker = redis.call('GET', KEYS[1])
if not marker then
  redis.call('SET', KEYS[1], ARGV[3])
  marker = ARGV[3]
end
return { marker, redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2], 'GET') }`;

/** The marker's key under `prefix` (one per Redis; a cluster needs one per hash tag: `guardedKeys`). */
export const restartMarkerKey = (prefix: string): string => `${prefix}restart`;

/** Shards of a sharded (Redis Cluster) store: each has its own hash tag, so its keys and its marker share a slot. */
export const RESTART_SHARDS = 16;

/**
 * The stored key and its marker's key, for one add. One Redis: `<prefix><key>` and
 * `<prefix>restart`. A Redis Cluster (`sharded`) runs a script on one slot only, so the keys are
 * spread over RESTART_SHARDS hash tags, `<prefix>{tsN}<key>` with its marker `<prefix>{tsN}restart`:
 * a master that comes back empty has lost the markers of its shards with their keys, and only those
 * shards notice. The tag comes first, so a `{` in a client's `jti` cannot move the key (a prefix
 * with its own tag, `{myapp}:`, puts everything in one slot, which works too).
 */
export function guardedKeys(prefix: string, key: string, sharded = false): { stored: string; marker: string } {
  if (!sharded) return { stored: prefix + key, marker: restartMarkerKey(prefix) };
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  const tag = shardTag((hash >>> 0) % RESTART_SHARDS);
  return { stored: `${prefix}${tag}${key}`, marker: `${prefix}${tag}restart` };
}

/** The hash tag of shard `n` (0 to RESTART_SHARDS − 1). */
const shardTag = (n: number): string => `{ts${n}}`;

/** Every marker key a store under `prefix` may write: one on one Redis, one per shard on a Redis Cluster (`sharded`). */
export function restartMarkerKeys(prefix: string, sharded = false): string[] {
  if (!sharded) return [restartMarkerKey(prefix)];
  return Array.from({ length: RESTART_SHARDS }, (_, n) => `${prefix}${shardTag(n)}restart`);
}

/** A new marker: 16 random bytes and the time it is written, in milliseconds since the epoch. */
export const newRestartMarker = (nowMs: number = Date.now()): string => `${randomBytes(16).toString('base64url')}:${nowMs}`;

/** The time (seconds since the epoch) a marker was written: when its store noticed it had lost its data. NaN when it is not a marker. */
export function noticedAt(marker: unknown): number {
  const text = typeof marker === 'string' ? marker : Buffer.isBuffer(marker) ? marker.toString() : '';
  const match = /^[A-Za-z0-9_-]{1,64}:([0-9]{1,15})$/.exec(text);
  return match ? Number(match[1]) / 1000 : NaN;
}

/**
 * Throws 503 ERR_TOKENSEC_STORE_RESTARTED when a key that could have been set as early as `since`
 * (seconds since the epoch) is new to a store that noticed at `notice` that it had lost its data,
 * after `since`. A marker that cannot be read counts as a notice now.
 */
export function refuseKeysFromBeforeRestart(since: number | undefined, notice: number, nowSeconds = Date.now() / 1000): void {
  if (since === undefined || !Number.isFinite(since)) return;
  const noticed = Number.isNaN(notice) ? nowSeconds : notice;
  if (since >= noticed) return;
  // For a proof dated now, `since` is now − clockSkew: a fresh one passes after noticed − since seconds at most.
  const wait = Math.max(1, Math.ceil(noticed - since));
  const error = new TokenSecError(
    'ERR_TOKENSEC_STORE_RESTARTED',
    'TokenSec store lost its data (a restart without persistence, a failover or a flush) and cannot tell whether it saw this request before; retry with a fresh proof.',
    503,
  );
  error.headers = { 'Retry-After': String(wait) };
  throw error;
}
