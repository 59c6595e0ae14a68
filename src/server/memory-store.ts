/**
 * `memoryStore()`: the AtomicStore of one process. Sized so that it cannot fill at any rate one
 * process can verify DPoP proofs (ids held = accepted proofs/s × (maxAge + clockSkew)), small per
 * id (a 12-byte fingerprint of the key), and fair: one owner (a DPoP key) cannot take more than its
 * share, and new owners cannot take the part kept for owners already in use.
 */
import { hash, randomBytes } from 'node:crypto';
import { TokenSecError } from '../protocol/errors.js';
import { assertClock, checkInteger, checkOptions } from './options.js';
import type { AtomicStore } from './store.js';

/**
 * Options of `memoryStore()`.
 *
 * @example
 * ```ts
 * import tokenSec from 'tokensec';
 * const store = tokenSec.memoryStore({ max: 2_000_000, maxPerOwner: 20_000 });
 * ```
 */
export interface MemoryStoreOptions {
  /** Most unexpired keys held at once; a full store answers 503 ERR_TOKENSEC_STORE_FULL. Default 1,000,000 (at most about 106 MiB of heap when full). */
  max?: number;
  /** Most unexpired keys one owner (a DPoP key's thumbprint) may hold: 429 ERR_TOKENSEC_DPOP_RATE_LIMITED beyond. Default `max / 64`. */
  maxPerOwner?: number;
  /** @deprecated Still accepted, undocumented, removed in 4.0: tests freeze the clock with vitest's fake timers (test/support/clock.ts). */
  now?: () => number;
}

/** New owners may fill the store up to this fraction of `max`; the rest is kept for owners that already hold keys or are bound. */
export const NEW_OWNER_SHARE = 0.75;

/**
 * Keys a bound owner (`markBound`) can always take, however full the store: room kept for it out
 * of the quarter new owners cannot take, so that a valid proof of a key in use is never refused
 * because other keys filled the store (at most `maxPerOwner`).
 */
export const KEPT_PER_BOUND_OWNER = 8;

/** The keys that expire together: dropped whole once their end has passed. */
interface Bucket {
  fingerprints: string[];
  /** Each key's owner number (ownerNumber), or -1. */
  owners: number[];
}

/**
 * An owner as a 30-bit number (a small integer to V8: no heap object per owner): FNV-1a under a
 * per-store random seed. Two owners that share a number share a count, which only affects the
 * share rule, never replay; the seed keeps anyone from choosing keys that collide.
 */
function ownerNumber(owner: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < owner.length; i++) h = Math.imul(h ^ owner.charCodeAt(i), 0x01000193);
  return (h >>> 1) & 0x3fffffff;
}

/**
 * 12 bytes (96 bits) of SHA-256 as a 12-character one-byte ('binary', i.e. latin1) string: 32 bytes of heap whatever the
 * key's length (a slice this short is a copy, not a view of the whole digest).
 */
const fingerprint = (key: string): string => hash('sha256', key, 'binary').slice(0, 12);

/**
 * Bucket width for a TTL: 1 s up to 64 s, then the power of two that keeps about 64 buckets per TTL.
 * A key is held until the end of its bucket: at most one width longer than asked, never shorter.
 */
const widthFor = (ttlSeconds: number): number => (ttlSeconds <= 64 ? 1 : 2 ** Math.ceil(Math.log2(ttlSeconds / 64)));

const full = () =>
  new TokenSecError(
    'ERR_TOKENSEC_STORE_FULL',
    'TokenSec memory store is full; try again later (README, "Stores", says how to size it).',
    503,
  );

/**
 * An AtomicStore in this process's memory: right for one server process (use `redisStore()` for
 * several). It never forgets a key early, which would reopen replay: when it holds `max` unexpired
 * keys it refuses new ones with 503 ERR_TOKENSEC_STORE_FULL (a replayed key is still answered as
 * one). With an owner (DPoP proof ids pass the key's thumbprint), an owner holding `maxPerOwner`
 * keys gets 429 ERR_TOKENSEC_DPOP_RATE_LIMITED, and an owner holding none may only take a new key
 * while the store is less than three-quarters full, so a flood of fresh keys cannot refuse a
 * client already in use. An owner marked bound (`markBound`: TokenSec marks a session's key and a
 * key a verified token names) is never new, and keeps KEPT_PER_BOUND_OWNER keys of room that no
 * other owner takes, for up to `max / 32` bound owners, so keys in use, idle or not, are not
 * refused because others filled the store. Keys expire in time buckets that are dropped whole.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import tokenSec from 'tokensec';
 *
 * const store = tokenSec.memoryStore(); // one per process, shared by the handshake and the API
 * const verifyToken = async () => ({ cnf: { jkt: 'a thumbprint' } });
 * const app = express();
 * app.post('/token', tokenSec.handshake({ payload: 'token', dpop: { replayStore: store } }));
 * app.use('/api', tokenSec.dpop({ verifyToken, replayStore: store }));
 * ```
 */
export function memoryStore(options: MemoryStoreOptions = {}): AtomicStore {
  const given = checkOptions('memoryStore', options, ['max', 'maxPerOwner', 'now']);
  const max = checkInteger('memoryStore', 'max', given.max, 1_000_000, 1, 100_000_000, 'keys');
  const maxPerOwner = checkInteger('memoryStore', 'maxPerOwner', given.maxPerOwner, Math.max(1, Math.floor(max / 64)), 1, max, 'keys');
  assertClock('memoryStore', 'now', given.now);
  const now = given.now ?? (() => Date.now());
  const newOwnerLimit = Math.max(1, Math.floor(max * NEW_OWNER_SHARE));
  const kept = Math.min(KEPT_PER_BOUND_OWNER, maxPerOwner);
  // The room kept for bound owners comes out of the part new owners cannot take.
  const maxBound = Math.floor((max - newOwnerLimit) / kept);

  const values = new Map<string, string>();
  const buckets = new Map<number, Bucket>();
  const owners = new Map<number, number>(); // owner number -> unexpired keys held
  const seed = randomBytes(4).readUInt32LE(0) ^ 0x811c9dc5;
  // Fingerprints deleted before their bucket ended, with how many bucket slots still name them:
  // such a slot must not delete a value set again since.
  const stale = new Map<string, number>();
  let nextEnd = Infinity;
  // Bound owners (markBound): owner number -> the second its mark ends; marks by end, to drop them.
  const marks = new Map<number, number>();
  const markBuckets = new Map<number, number[]>();
  // Keys promised to bound owners and not yet taken: the sum over them of kept − held (when positive).
  let promised = 0;
  const owed = (owner: number) => Math.max(0, kept - (owners.get(owner) ?? 0));

  function dropExpired(second: number): void {
    if (second < nextEnd) return;
    nextEnd = Infinity;
    for (const [end, bucket] of markBuckets) {
      if (end > second) {
        nextEnd = Math.min(nextEnd, end);
        continue;
      }
      markBuckets.delete(end);
      for (const owner of bucket) {
        if (marks.get(owner) !== end) continue;
        promised -= owed(owner);
        marks.delete(owner);
      }
    }
    for (const [end, bucket] of buckets) {
      if (end > second) {
        nextEnd = Math.min(nextEnd, end);
        continue;
      }
      buckets.delete(end);
      bucket.fingerprints.forEach((print, i) => {
        const left = stale.get(print);
        if (left === undefined) values.delete(print);
        else if (left > 1) stale.set(print, left - 1);
        else stale.delete(print);
        const owner = bucket.owners[i]!;
        if (owner < 0) return;
        const count = owners.get(owner)! - 1;
        if (count === 0) owners.delete(owner);
        else owners.set(owner, count);
        // A bound owner below its kept room is owed that key again (the store shrank by one too).
        if (count < kept && marks.has(owner)) promised++;
      });
    }
  }

  return {
    addIfAbsent(key, value, ttlSeconds, owner) {
      if (typeof key !== 'string' || typeof value !== 'string' || !(ttlSeconds > 0) || !Number.isFinite(ttlSeconds)) {
        throw new TypeError('memoryStore.addIfAbsent(key, value, ttlSeconds): strings and a positive number of seconds.');
      }
      const time = now() / 1000;
      dropExpired(Math.floor(time));
      const print = fingerprint(key);
      const existing = values.get(print);
      if (existing !== undefined) return existing;
      if (values.size >= max) throw full();
      const number = owner === undefined ? -1 : ownerNumber(owner, seed);
      const held = number < 0 ? 0 : (owners.get(number) ?? 0);
      if (held >= maxPerOwner) {
        throw new TokenSecError('ERR_TOKENSEC_DPOP_RATE_LIMITED', 'Too many DPoP proofs from this key; slow down.', 429);
      }
      const bound = number >= 0 && marks.has(number);
      if (bound && held < kept) {
        // Its kept room: counted in `promised` until now, so there is room for it.
        promised--;
      } else {
        // Everyone else leaves the room promised to bound owners alone; new owners keep to their part too.
        if (values.size + promised >= max) throw full();
        if (number >= 0 && held === 0 && !bound && values.size >= newOwnerLimit) throw full();
      }
      const width = widthFor(ttlSeconds);
      const end = Math.ceil((time + ttlSeconds) / width) * width;
      let bucket = buckets.get(end);
      if (!bucket) buckets.set(end, (bucket = { fingerprints: [], owners: [] }));
      if (number >= 0) owners.set(number, held + 1);
      bucket.fingerprints.push(print);
      bucket.owners.push(number);
      nextEnd = Math.min(nextEnd, end);
      values.set(print, value);
      return undefined;
    },
    delete(key) {
      const print = fingerprint(key);
      if (values.delete(print)) stale.set(print, (stale.get(print) ?? 0) + 1);
    },
    markBound(owner, ttlSeconds) {
      if (typeof owner !== 'string' || !(ttlSeconds > 0) || !Number.isFinite(ttlSeconds)) {
        throw new TypeError('memoryStore.markBound(owner, ttlSeconds): a string and a positive number of seconds.');
      }
      const time = now() / 1000;
      dropExpired(Math.floor(time));
      const number = ownerNumber(owner, seed);
      const width = widthFor(ttlSeconds);
      const end = Math.ceil((time + ttlSeconds) / width) * width;
      const earlier = marks.get(number);
      if (earlier !== undefined && earlier >= end) return;
      if (earlier === undefined) {
        // No room left to promise: the owner stays as it was (an owner in use, or a new one).
        if (marks.size >= maxBound || values.size + promised + owed(number) > max) return;
        promised += owed(number);
      }
      marks.set(number, end);
      let bucket = markBuckets.get(end);
      if (!bucket) markBuckets.set(end, (bucket = []));
      bucket.push(number);
      nextEnd = Math.min(nextEnd, end);
    },
  };
}

/**
 * The binding store every handshake and `tokenSec.unbind()` share when the app names none: a
 * store of its own, so that a flood of proof ids can never fill the room session bindings need.
 */
export const defaultBindingStore: AtomicStore = memoryStore();
