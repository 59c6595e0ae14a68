/**
 * memoryStore(): the AtomicStore contract, expiry in buckets, the full store and the owners'
 * shares; the 3.0 ReplayStore wrapped; store and nonce options checked like every other option.
 */
import { createClient } from 'redis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeClock } from '../../support/clock.js';
import tokenSec, { memoryStore, memoryReplayStore, type AtomicStore } from '../../../src/index.js';
import { KEPT_PER_BOUND_OWNER, NEW_OWNER_SHARE } from '../../../src/server/memory-store.js';
import { asAtomicStore } from '../../../src/server/dpop/replay-store.js';
import { nonceSource } from '../../../src/server/dpop/nonce.js';
import { callStore } from '../../../src/server/store.js';

/** The store's answer, or the code it refused with. */
const attempt = (store: AtomicStore, key: string, ttl = 10, owner?: string, value = 'v') => {
  try {
    return store.addIfAbsent(key, value, ttl, owner);
  } catch (error) {
    return (error as { code?: string }).code ?? error;
  }
};

afterEach(() => {
  vi.useRealTimers();
});

describe('memoryStore(): add-if-absent', () => {
  it('sets a key once and answers the value already there, which stays unchanged', () => {
    const store = memoryStore();
    expect(attempt(store, 'bind:s1', 60, undefined, 'jkt-a')).toBeUndefined();
    expect(attempt(store, 'bind:s1', 60, undefined, 'jkt-b')).toBe('jkt-a');
    expect(attempt(store, 'bind:s1', 60, undefined, 'jkt-c')).toBe('jkt-a');
    expect(attempt(store, 'bind:s2', 60, undefined, 'jkt-b')).toBeUndefined();
  });

  it('keeps a key for its whole TTL, never less, and forgets it within one bucket after', () => {
    const clock = fakeClock(1_000_500);
    const store = memoryStore();
    expect(attempt(store, 'a', 65)).toBeUndefined();
    expect(attempt(store, 'b', 10)).toBeUndefined();
    clock.advance(9_999);
    expect(attempt(store, 'b', 10)).toBe('v');
    clock.advance(2_000); // b's 10 s (and its 1-second bucket) are over
    expect(attempt(store, 'b', 10)).toBeUndefined();
    clock.set(1_000_500 + 64_999);
    expect(attempt(store, 'a', 65)).toBe('v');
    clock.set(1_000_500 + 65_000 + 2_000); // a 65 s TTL is held in 2-second buckets
    expect(attempt(store, 'a', 65)).toBeUndefined();
  });

  it('long TTLs (bindings) and short ones (proof ids) mixed: the short ones still expire', () => {
    const clock = fakeClock(0);
    const store = memoryStore({ max: 3 });
    expect(attempt(store, 'bind:long', 86_400)).toBeUndefined();
    expect(attempt(store, 'jti:1', 65)).toBeUndefined();
    expect(attempt(store, 'jti:2', 65)).toBeUndefined();
    expect(attempt(store, 'jti:3', 65)).toBe('ERR_TOKENSEC_STORE_FULL');
    clock.set(70_000);
    expect(attempt(store, 'jti:3', 65)).toBeUndefined();
    expect(attempt(store, 'bind:long', 86_400, undefined, 'other')).toBe('v');
  });

  it('delete frees a key at once; set again, it is kept for its new TTL even when the old bucket ends first', () => {
    const clock = fakeClock(0);
    const store = memoryStore();
    expect(attempt(store, 'bind:s', 10, undefined, 'first')).toBeUndefined();
    store.delete('bind:s');
    store.delete('never-set');
    clock.set(5_000);
    expect(attempt(store, 'bind:s', 100, undefined, 'second')).toBeUndefined();
    clock.set(20_000); // the first value's bucket has ended
    expect(attempt(store, 'bind:s', 100, undefined, 'third')).toBe('second');
    clock.set(5_000 + 100_000 + 2_000);
    expect(attempt(store, 'bind:s', 100, undefined, 'fourth')).toBeUndefined();
  });

  it('full: refuses new keys with 503 ERR_TOKENSEC_STORE_FULL and still answers a replay as one', async () => {
    const clock = fakeClock(0);
    const store = memoryStore({ max: 2 });
    expect([attempt(store, 'a'), attempt(store, 'b'), attempt(store, 'c'), attempt(store, 'a')]).toEqual([
      undefined,
      undefined,
      'ERR_TOKENSEC_STORE_FULL',
      'v',
    ]);
    await expect(callStore(() => store.addIfAbsent('d', 'v', 10), 1000)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_STORE_FULL',
      status: 503,
    });
    clock.set(11_000);
    expect([attempt(store, 'c'), attempt(store, 'a')]).toEqual([undefined, undefined]);
  });

  it('an owner over its share gets 429 ERR_TOKENSEC_DPOP_RATE_LIMITED; other owners are not refused', () => {
    const clock = fakeClock(0);
    const store = memoryStore({ max: 100, maxPerOwner: 5 });
    for (let i = 0; i < 5; i++) expect(attempt(store, `flood:${i}`, 65, 'flooder')).toBeUndefined();
    expect(attempt(store, 'flood:5', 65, 'flooder')).toBe('ERR_TOKENSEC_DPOP_RATE_LIMITED');
    expect(attempt(store, 'flood:0', 65, 'flooder')).toBe('v'); // a replay is still a replay
    for (let i = 0; i < 5; i++) expect(attempt(store, `user:${i}`, 65, 'user')).toBeUndefined();
    clock.set(70_000); // the flooder's ids have expired: its share is free again
    expect(attempt(store, 'flood:6', 65, 'flooder')).toBeUndefined();
  });

  it('the default share is max / 64', () => {
    const store = memoryStore({ max: 640 });
    for (let i = 0; i < 10; i++) expect(attempt(store, `k${i}`, 65, 'one')).toBeUndefined();
    expect(attempt(store, 'k10', 65, 'one')).toBe('ERR_TOKENSEC_DPOP_RATE_LIMITED');
  });

  it('new owners stop at three-quarters full; owners already holding ids use the rest', () => {
    const store = memoryStore({ max: 100, maxPerOwner: 50 });
    expect(attempt(store, 'user:0', 65, 'user')).toBeUndefined();
    let fresh = 0;
    while (attempt(store, `visitor:${fresh}`, 65, `visitor-key-${fresh}`) === undefined) fresh++;
    expect(fresh + 1).toBe(100 * NEW_OWNER_SHARE);
    expect(attempt(store, `visitor:${fresh}`, 65, `visitor-key-${fresh}`)).toBe('ERR_TOKENSEC_STORE_FULL');
    for (let i = 1; i <= 25; i++) expect(attempt(store, `user:${i}`, 65, 'user')).toBeUndefined();
    expect(attempt(store, 'user:26', 65, 'user')).toBe('ERR_TOKENSEC_STORE_FULL');
  });

  it('a bound owner (markBound) is not new, idle or not: it keeps KEPT_PER_BOUND_OWNER keys of room nobody else takes', () => {
    const clock = fakeClock(Date.UTC(2026, 0, 1));
    const store = memoryStore({ max: 100, maxPerOwner: 50 });
    store.markBound!('bound', 600);
    // In use, unbound: it fills what is left, but not the room promised to the bound owner.
    expect(attempt(store, 'busy:0', 65, 'busy')).toBeUndefined();
    let fresh = 0;
    while (attempt(store, `visitor:${fresh}`, 65, `visitor-key-${fresh}`) === undefined) fresh++;
    expect(fresh + 1).toBe(100 * NEW_OWNER_SHARE);
    let busy = 1;
    while (attempt(store, `busy:${busy}`, 65, 'busy') === undefined) busy++;
    expect(fresh + busy).toBe(100 - KEPT_PER_BOUND_OWNER);
    for (let i = 0; i < KEPT_PER_BOUND_OWNER; i++) expect(attempt(store, `bound:${i}`, 65, 'bound')).toBeUndefined();
    expect(attempt(store, 'bound:x', 65, 'bound')).toBe('ERR_TOKENSEC_STORE_FULL');
    // Its ids expire: its room is promised again, still not given to others.
    clock.advance(70_000);
    let others = 0;
    while (attempt(store, `busy2:${others}`, 65, 'busy2') === undefined) others++;
    expect(others).toBe(50);
    expect(attempt(store, 'bound:y', 65, 'bound')).toBeUndefined();
    // Once its mark ends (600 s), it is an owner like any other.
    clock.advance(600_000);
    expect(attempt(store, 'new:0', 65, 'new')).toBeUndefined();
  });

  it('marks are bounded: only as many bound owners as the kept quarter holds get room promised', () => {
    fakeClock(Date.UTC(2026, 0, 1));
    const store = memoryStore({ max: 64, maxPerOwner: 8 });
    // (64 − 48) / 8 = 2 bound owners.
    for (const owner of ['a', 'b', 'c']) store.markBound!(owner, 600);
    for (let i = 0; i < 48; i++) expect(attempt(store, `v:${i}`, 65, `v${i}`)).toBeUndefined();
    expect(attempt(store, 'c:0', 65, 'c')).toBe('ERR_TOKENSEC_STORE_FULL');
    expect(attempt(store, 'a:0', 65, 'a')).toBeUndefined();
    expect(attempt(store, 'b:0', 65, 'b')).toBeUndefined();
    expect(() => store.markBound!('a', 0)).toThrow(TypeError);
  });

  it('holds keys of any length in the same room (fixed-length fingerprints)', () => {
    const store = memoryStore({ max: 2 });
    expect(attempt(store, 'x'.repeat(10_000))).toBeUndefined();
    expect(attempt(store, 'x'.repeat(10_000))).toBe('v');
    expect(attempt(store, 'x'.repeat(9_999))).toBeUndefined();
  });

  it('bad calls are errors (callStore makes them 503 ERR_TOKENSEC_STORE_UNAVAILABLE)', async () => {
    const store = memoryStore();
    expect(() => store.addIfAbsent('k', 'v', 0)).toThrow(TypeError);
    expect(() => store.addIfAbsent('k', 'v', Number.NaN)).toThrow(TypeError);
    expect(() => store.addIfAbsent('k', 1 as unknown as string, 10)).toThrow(TypeError);
    await expect(callStore(() => store.addIfAbsent('k', 'v', -1), 1000)).rejects.toMatchObject({ code: 'ERR_TOKENSEC_STORE_UNAVAILABLE' });
  });
});

describe('store options are checked when the store is made', () => {
  it.each([
    [{ max: 0 }, /tokenSec\.memoryStore\(\): option "max" must be a whole number of keys from 1 to 100000000, got 0/],
    [{ max: 1.5 }, /option "max" must be a whole number/],
    [{ max: '100' }, /option "max" must be a whole number of keys from 1 to 100000000, got string/],
    [{ max: 10, maxPerOwner: 11 }, /option "maxPerOwner" must be a whole number of keys from 1 to 10, got 11/],
    [{ maxPerOwner: 0 }, /option "maxPerOwner"/],
    [{ now: 5 }, /option "now" must be a function/],
    [{ maxx: 5 }, /unknown option "maxx"\. Did you mean "max"\?/],
  ])('memoryStore(%o)', (options, message) => {
    expect(() => memoryStore(options as never)).toThrow(message);
    expect(() => memoryReplayStore(options as never)).toThrow(message);
  });

  it.each([
    [{}, /option "client" must be a node-redis client/],
    [{ client: {} }, /option "client" must be a node-redis client, pool, cluster or sentinel .* or an ioredis client or cluster/],
    [{ client: createClient(), prefix: 5 }, /option "prefix" must be a string/],
    [{ client: createClient(), prefx: 'a' }, /unknown option "prefx"\. Did you mean "prefix"\?/],
  ])('redisStore(%o)', (options, message) => {
    expect(() => tokenSec.redisStore(options as never)).toThrow(message);
    expect(() => tokenSec.redisReplayStore(options as never)).toThrow(message);
  });

  const verifyToken = () => ({});
  it.each([
    [{ storeTimeout: 0 }, /"storeTimeout" must be a whole number of milliseconds from 1 to 60000, got 0/],
    [{ storeTimeout: '1s' }, /"storeTimeout" must be a whole number of milliseconds/],
    [{ replayStore: { addIfAbsent: 1 } }, /"replayStore" must be a store with addIfAbsent/],
    [{ nonce: { window: 0 } }, /option "nonce\.window" must be a whole number of seconds from 1 to 86400, got 0/],
    [{ nonce: { window: 'x' } }, /option "nonce\.window" must be a whole number of seconds/],
    [{ nonce: { window: 1.5 } }, /option "nonce\.window"/],
    [{ nonce: { key: '' } }, /option "nonce\.key" must be at least 32 bytes, got 0\. Make one with: node -e/],
    [{ nonce: { key: 'short' } }, /option "nonce\.key" must be at least 32 bytes, got 5/],
    [{ nonce: { key: new Uint8Array(31) } }, /option "nonce\.key" must be at least 32 bytes, got 31/],
    [{ nonce: { key: 42 } }, /option "nonce\.key" must be a string or a Uint8Array of at least 32 bytes, got number/],
    [{ nonce: { windw: 60 } }, /unknown option "nonce\.windw"\. Did you mean "nonce\.window"\?/],
    [{ nonce: 'yes' }, /option "nonce" must be true, false or nonce options/],
    [{ onEvent: 'log' }, /option "onEvent" must be a function/],
  ])('dpop(%o)', (options, message) => {
    expect(() => tokenSec.dpop({ verifyToken, ...(options as object) })).toThrow(message);
  });

  it.each([
    [{ storeTimeout: -1 }, /tokenSec\.handshake\(\): option "dpop\.storeTimeout" must be a whole number of milliseconds/],
    [{ nonce: { window: 0 } }, /tokenSec\.handshake\(\): option "dpop\.nonce\.window" must be a whole number of seconds/],
    [{ nonce: { key: 'k' } }, /option "dpop\.nonce\.key" must be at least 32 bytes/],
    [{ replayStore: [] }, /option "dpop\.replayStore" must be a store/],
  ])('handshake({ dpop: %o })', (dpop, message) => {
    expect(() => tokenSec.handshake({ payload: 'token', dpop: dpop as never })).toThrow(message);
  });

  it('valid nonce and store options are accepted', () => {
    const key = 'k'.repeat(32);
    expect(() => tokenSec.dpop({ verifyToken, storeTimeout: 250, nonce: { window: 1, key } })).not.toThrow();
    expect(() => tokenSec.dpop({ verifyToken, nonce: { key: new Uint8Array(32) } })).not.toThrow();
    expect(() => tokenSec.handshake({ payload: 'token', dpop: { storeTimeout: 250, nonce: { key } } })).not.toThrow();
    expect(() => memoryStore({ max: 1, maxPerOwner: 1 })).not.toThrow();
  });
});

describe('nonces shared by processes', () => {
  it('a nonce from one source is good at another with the same key; not with another key or a random one', () => {
    const key = 'a shared nonce key of at least 32 bytes';
    const clock = fakeClock(1_700_000_000_000);
    const first = nonceSource({ key, window: 60 });
    const second = nonceSource({ key: Buffer.from(key), window: 60 });
    const stranger = nonceSource({ key: 'another key of at least thirty-two bytes', window: 60 });
    const unkeyed = nonceSource({ window: 60 });
    const issued = first.current();
    expect(second.isValid(issued)).toBe(true);
    expect(stranger.isValid(issued)).toBe(false);
    expect(unkeyed.isValid(issued)).toBe(false);
    clock.advance(60_000);
    expect(second.isValid(issued)).toBe(true); // the previous window's nonce
    clock.advance(60_000);
    expect(second.isValid(issued)).toBe(false);
  });
});

describe('a 3.0 ReplayStore is wrapped', () => {
  it('add(key, ttl) becomes addIfAbsent; it sees <jkt>:<jti> as in 3.0', async () => {
    const seen = new Map<string, number>();
    const legacy = { add: (key: string, ttl: number) => !seen.has(key) && Boolean(seen.set(key, ttl)) };
    const store = asAtomicStore(legacy)!;
    expect(await store.addIfAbsent('jti:JKT:id-1', '1', 65)).toBeUndefined();
    expect(await store.addIfAbsent('jti:JKT:id-1', '1', 65)).toBe('1');
    expect([...seen]).toEqual([['JKT:id-1', 65]]);
    expect(() => store.delete('x')).toThrow(/cannot delete/);
    expect(asAtomicStore({})).toBeUndefined();
    const atomic = memoryStore();
    expect(asAtomicStore(atomic)).toBe(atomic);
  });
});

describe('the handshake records its proof through the same store calls', () => {
  it('a store that fails or never answers: 503 ERR_TOKENSEC_STORE_UNAVAILABLE (after storeTimeout), with its event; never "replayed"', async () => {
    const express = (await import('express')).default;
    const { listen, signedHandshake } = await import('../../support/helpers.js');
    const SECRET = 'store-handshake-secret-0123';
    const silent: AtomicStore = { addIfAbsent: () => new Promise(() => undefined), delete: () => undefined };
    const failing: AtomicStore = { addIfAbsent: () => Promise.reject(new Error('ECONNREFUSED')), delete: () => undefined };
    for (const replayStore of [silent, failing]) {
      const events: { code?: string | undefined; status: number }[] = [];
      const app = express();
      app.post(
        '/token',
        tokenSec.handshake({
          secret: SECRET,
          payload: 'token',
          terminate: true,
          dpop: { replayStore, storeTimeout: 200, sessionKey: false },
          onEvent: (event) => events.push(event),
        }),
      );
      app.use(tokenSec.errorHandler());
      const server = await listen(app);
      try {
        const url = `${server.origin}/token`;
        const response = await fetch(url, { method: 'POST', headers: (await signedHandshake(url, SECRET)).headers });
        expect(response.status).toBe(503);
        expect(((await response.json()) as { code: string }).code).toBe('ERR_TOKENSEC_STORE_UNAVAILABLE');
        expect(events).toEqual([expect.objectContaining({ outcome: 'failed', status: 503, code: 'ERR_TOKENSEC_STORE_UNAVAILABLE' })]);
      } finally {
        await server.close();
      }
    }
  });
});
