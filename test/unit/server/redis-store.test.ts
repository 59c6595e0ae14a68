/**
 * redisStore(): which clients it takes, decided when the store is made (before the client
 * connects), and the clear refusal of anything else. The commands themselves run against real
 * redis-servers and a real Redis Cluster in test/integration/redis-store.test.ts.
 */
import { Cluster, Redis } from 'ioredis';
import { createClient, createClientPool, createCluster, createSentinel } from 'redis';
import { describe, expect, it } from 'vitest';
import tokenSec from '../../../src/index.js';
import { isClusterClient, storedKey } from '../../../src/server/redis-store.js';
import { callStore } from '../../../src/server/store.js';

// Nothing listens on port 1: none of these clients is connected, and none tries to (lazy).
const url = 'redis://127.0.0.1:1';
const ACCEPTS =
  /must be a node-redis client, pool, cluster or sentinel \(createClient\(\), createClientPool\(\), createCluster\(\) or createSentinel\(\) from "redis" v4 or later\) or an ioredis client or cluster \(new Redis\(\) or new Cluster\(\) from "ioredis"\)/;

describe('redisStore() takes each client of node-redis and ioredis, connected or not yet', () => {
  it.each([
    ['a node-redis client', () => createClient({ url })],
    ['a node-redis pool', () => createClientPool({ url })],
    ['a node-redis cluster', () => createCluster({ rootNodes: [{ url }] })],
    ['a node-redis sentinel', () => createSentinel({ name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: 1 }] })],
    ['an ioredis client', () => new Redis(url, { lazyConnect: true })],
    ['an ioredis cluster', () => new Cluster([url], { lazyConnect: true })],
  ])('%s', (_name, make) => {
    const store = tokenSec.redisStore({ client: make() });
    expect(typeof store.addIfAbsent).toBe('function');
    expect(typeof store.delete).toBe('function');
  });
});

describe('isClusterClient(): a cluster client spreads keys and restart markers over hash tags, the others keep one marker', () => {
  it.each([
    ['a node-redis client', () => createClient({ url }), false],
    ['a node-redis pool', () => createClientPool({ url }), false],
    ['a node-redis cluster', () => createCluster({ rootNodes: [{ url }] }), true],
    ['a node-redis sentinel', () => createSentinel({ name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: 1 }] }), false],
    ['an ioredis client', () => new Redis(url, { lazyConnect: true }), false],
    ['an ioredis cluster', () => new Cluster([url], { lazyConnect: true }), true],
  ])('%s: %s', (_name, make, cluster) => {
    expect(isClusterClient(make())).toBe(cluster);
  });

  it('the stored key: one Redis keeps its name; a cluster puts a shard tag before the key', () => {
    expect(storedKey('tokensec:', 'jti:k:{x}1')).toBe('tokensec:jti:k:{x}1');
    expect(storedKey('tokensec:', 'jti:k:{x}1', true)).toMatch(/^tokensec:\{ts([0-9]|1[0-5])\}jti:k:\{x\}1$/);
  });
});

describe('redisStore() refuses a client it cannot use when it is made, saying what it takes', () => {
  const client = createClient({ url });
  it.each([
    ['no client', undefined, /got undefined/],
    ['null', null, /got null/],
    ['a URL string', url, /got string/],
    ['a plain object', {}, /got an object with neither call\(\) \(ioredis\) nor sendCommand\(\) and connect\(\) \(node-redis\)/],
    [
      'an object with only sendCommand',
      { sendCommand: () => Promise.resolve(null) },
      /legacy\(\) client or a multi\(\): pass the client itself/,
    ],
    // Its sendCommand answers through a callback and returns nothing: every proof would look new.
    ["node-redis's legacy() client", client.legacy(), /legacy\(\) client or a multi\(\): pass the client itself/],
    ['a node-redis multi()', client.multi(), /legacy\(\) client or a multi\(\)/],
    ['a promise of a client', Promise.resolve(client), /got a promise \(await client\.connect\(\) before passing the client/],
  ])('%s', (_name, given, message) => {
    for (const make of [tokenSec.redisStore, tokenSec.redisReplayStore]) {
      expect(() => make({ client: given as never })).toThrow(TypeError);
      expect(() => make({ client: given as never })).toThrow(ACCEPTS);
      expect(() => make({ client: given as never })).toThrow(message);
    }
  });

  it('a client whose command answers something other than a promise: that call fails (503 through callStore), never "absent"', async () => {
    const store = tokenSec.redisStore({ client: { call: () => undefined } as never });
    await expect(store.addIfAbsent('k', 'v', 10)).rejects.toThrow('The Redis client did not answer with a promise.');
    await expect(callStore(() => store.addIfAbsent('k', 'v', 10), 1000)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_STORE_UNAVAILABLE',
      status: 503,
    });
  });
});
