/** The default binding store: memoryStore(), a store of its own, with the AtomicStore contract a binding needs. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeClock } from '../../support/clock.js';
import { defaultBindingStore, memoryStore } from '../../../src/server/memory-store.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('the binding store (memoryStore)', () => {
  it('sets once and reads the value back; expires after ttl; delete frees the key', async () => {
    const clock = fakeClock(0);
    const store = memoryStore();
    expect(await store.addIfAbsent('k', 'a', 10)).toBeUndefined();
    expect(await store.addIfAbsent('k', 'b', 10)).toBe('a');
    clock.set(10_000);
    expect(await store.addIfAbsent('k', 'c', 10)).toBeUndefined();
    await store.delete('k');
    expect(await store.addIfAbsent('k', 'd', 10)).toBeUndefined();
    expect(await store.addIfAbsent('k', 'e', 10)).toBe('d');
  });

  it('never forgets a binding early: full, it refuses a new key with 503 ERR_TOKENSEC_STORE_FULL and keeps the old ones', async () => {
    const store = memoryStore({ max: 2 });
    await store.addIfAbsent('one', '1', 60);
    await store.addIfAbsent('two', '2', 60);
    expect(() => store.addIfAbsent('three', '3', 60)).toThrow(expect.objectContaining({ code: 'ERR_TOKENSEC_STORE_FULL', status: 503 }));
    expect(await store.addIfAbsent('one', 'x', 60)).toBe('1');
    expect(await store.addIfAbsent('two', 'x', 60)).toBe('2');
  });

  it('the default binding store is not the default replay store: proof ids cannot take the room bindings need', async () => {
    const { defaultStore } = await import('../../../src/server/dpop/replay-store.js');
    expect(defaultBindingStore).not.toBe(defaultStore());
  });
});
