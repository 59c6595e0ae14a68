/** The default binding store: the AtomicStore contract in one process's memory, with TTL and a bound on entries. */
import { describe, expect, it } from 'vitest';
import { memoryAtomicStore } from '../../src/server/memory-atomic-store.js';

describe('memoryAtomicStore', () => {
  it('sets once and reads the value back; expires after ttl; delete frees the key', async () => {
    let now = 0;
    const store = memoryAtomicStore({ now: () => now });
    expect(await store.addIfAbsent('k', 'a', 10)).toBeUndefined();
    expect(await store.addIfAbsent('k', 'b', 10)).toBe('a');
    now = 10_000;
    expect(await store.addIfAbsent('k', 'c', 10)).toBeUndefined();
    await store.delete('k');
    expect(await store.addIfAbsent('k', 'd', 10)).toBeUndefined();
    expect(await store.addIfAbsent('k', 'e', 10)).toBe('d');
  });

  it('holds at most max entries: the oldest goes first', async () => {
    const store = memoryAtomicStore({ max: 2 });
    await store.addIfAbsent('one', '1', 60);
    await store.addIfAbsent('two', '2', 60);
    await store.addIfAbsent('three', '3', 60);
    expect(await store.addIfAbsent('two', 'x', 60)).toBe('2');
    expect(await store.addIfAbsent('one', 'x', 60)).toBeUndefined();
  });
});
