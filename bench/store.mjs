// The replay store's own figure (section 8 of npm run bench; alone: node --expose-gc bench/store.mjs):
// memoryStore() at its defaults, measured on addIfAbsent() alone, not on requests. A fake clock
// moves one second per RATE ids, so the store holds what a process accepting RATE proofs/s would
// hold (ids held = proofs/s x (maxAge + clockSkew)); the time is the adds' own.
import { memoryStore } from '../dist/server/memory-store.js';

const RATE = 10_000;
const WINDOW = 60 + 5; // the default maxAge + clockSkew

export async function storeBench({ quick = false } = {}) {
  const gc = globalThis.gc ?? (() => undefined);
  const heap = () => (gc(), process.memoryUsage().heapUsed);
  const owners = Array.from({ length: 1000 }, (_, i) => `owner-${String(i).padStart(37, '0')}`);
  const jti = (n) => `${n.toString(36)}-${'x'.repeat(16)}`;

  // Sustained: RATE new ids per (fake) second for three windows (one with --quick).
  let time = 1_800_000_000_000;
  const before = heap();
  const store = memoryStore({ now: () => time });
  const seconds = (quick ? 1 : 3) * WINDOW;
  let refused = 0;
  let elapsed = 0n;
  for (let second = 0, n = 0; second < seconds; second++, time += 1000) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < RATE; i++, n++) {
      const owner = owners[i % owners.length];
      try {
        if (store.addIfAbsent(`jti:${owner}:${jti(n)}`, '1', WINDOW, owner) !== undefined) refused++;
      } catch {
        refused++;
      }
    }
    elapsed += process.hrtime.bigint() - t0;
  }
  const sustained = {
    adds: seconds * RATE,
    refused,
    addsPerSecond: Math.round((seconds * RATE) / (Number(elapsed) / 1e9)),
    heldIds: RATE * (WINDOW + 2), // the 65 s TTL is held in 2-second buckets
    heapMiB: (heap() - before) / 2 ** 20,
  };

  // Full: the default max (1,000,000 ids), in the worst case for memory: every new owner a
  // visitor's fresh key (until new owners have their three-quarters), then each of them again.
  const beforeFull = heap();
  const full = memoryStore({ now: () => time });
  let held = 0;
  for (let n = 0, round = 0; held < 1_000_000 && round < 3; round++) {
    for (let i = 0; held < 1_000_000 && i < 1_000_000; i++, n++) {
      const owner = `visitor-${String(i).padStart(35, '0')}`;
      try {
        full.addIfAbsent(`jti:${owner}:${jti(n)}`, '1', WINDOW, owner);
        held++;
      } catch {
        // full for new owners: the next round is their second id
      }
    }
  }
  const atMax = { heldIds: held, heapMiB: (heap() - beforeFull) / 2 ** 20 };
  // Keep both stores alive until measured.
  void store.addIfAbsent('alive', '1', 1);
  void full.delete('alive');
  return { sustained, atMax };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await storeBench({ quick: process.argv.includes('--quick') });
  console.log(JSON.stringify(result, null, 2));
}
