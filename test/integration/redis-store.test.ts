/**
 * redisStore() against a real redis-server, with node-redis and with ioredis, each set up as
 * README shows it (an `error` listener) and with its offline queue turned off: add-if-absent,
 * TTL and delete; then tokenSec.dpop() on it while redis-server is STOPPED in the middle of the
 * run: every request is answered 503 ERR_TOKENSEC_STORE_UNAVAILABLE (never a hang, never
 * "replayed"), and requests pass again once Redis is back.
 * Then the same store on a three-master Redis Cluster with node-redis's createCluster() and
 * ioredis's Cluster: each key lands on the master of its slot, and with one master stopped the
 * proofs whose ids live in its slots get 503 while the others pass; once it is back with its data,
 * the proofs it held are still refused as replays.
 */
import * as dpopPackage from 'dpop';
import express from 'express';
import { Cluster, Redis } from 'ioredis';
import { createClient, createClientPool, createCluster, createSentinel } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import tokenSec, { type AtomicStore, type DpopEvent } from '../../src/index.js';
import { listen } from '../support/helpers.js';
import { currentNonce } from '../support/proofs.js';
import { replayKey } from '../../src/server/dpop/replay-store.js';
import { storedKey } from '../../src/server/redis-store.js';
import { markStoreInUse, startRedis, type RedisServer } from '../support/redis.js';
import {
  markClusterInUse,
  slotOf,
  startRedisCluster,
  startSentinel,
  until,
  type ClusterNode,
  type RedisCluster,
} from '../support/redis-cluster.js';

interface Setup {
  name: string;
  connect(url: string, errors: Error[]): Promise<{ client: Parameters<typeof tokenSec.redisStore>[0]['client']; close(): Promise<void> }>;
}

const setups: Setup[] = [
  {
    name: 'node-redis as README shows it (offline queue on)',
    async connect(url, errors) {
      const client = createClient({ url });
      client.on('error', (error: Error) => errors.push(error)); // node-redis needs a listener: without one, a lost connection crashes the process
      await client.connect();
      return { client, close: async () => void (await client.close()) };
    },
  },
  {
    name: 'node-redis with disableOfflineQueue',
    async connect(url, errors) {
      const client = createClient({ url, disableOfflineQueue: true });
      client.on('error', (error: Error) => errors.push(error));
      await client.connect();
      return { client, close: async () => void (await client.close()) };
    },
  },
  {
    name: 'node-redis createClientPool() with disableOfflineQueue',
    async connect(url, errors) {
      const client = createClientPool({ url, disableOfflineQueue: true });
      client.on('error', (error: Error) => errors.push(error));
      await client.connect();
      return { client, close: async () => void (await client.close()) };
    },
  },
  {
    name: 'ioredis as README shows it (offline queue on, 20 retries per request)',
    async connect(url, errors) {
      const client = new Redis(url);
      client.on('error', (error: Error) => errors.push(error));
      await new Promise<void>((resolve, reject) => client.once('ready', resolve).once('error', reject));
      return { client, close: async () => client.disconnect() };
    },
  },
  {
    name: 'ioredis with enableOfflineQueue: false',
    async connect(url, errors) {
      const client = new Redis(url, { enableOfflineQueue: false });
      client.on('error', (error: Error) => errors.push(error));
      await new Promise<void>((resolve, reject) => client.once('ready', resolve).once('error', reject));
      return { client, close: async () => client.disconnect() };
    },
  },
];

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function redisClient(
  setup: Setup,
): Promise<{ redis: RedisServer; client: Awaited<ReturnType<Setup['connect']>>['client']; errors: Error[] }> {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  await markStoreInUse(redis); // a Redis in use, not a new one (store-restart.test.ts plays that)
  const errors: Error[] = [];
  const { client, close } = await setup.connect(redis.url, errors);
  cleanups.push(close);
  return { redis, client, errors };
}

describe.each(setups)('$name', (setup) => {
  it('add-if-absent answers undefined once, then the value set; keys expire with their TTL; delete frees one', async () => {
    const { client } = await redisClient(setup);
    const store: AtomicStore = tokenSec.redisStore({ client });
    expect(await store.addIfAbsent('bind:s1', 'jkt-a', 60)).toBeUndefined();
    expect(await store.addIfAbsent('bind:s1', 'jkt-b', 60)).toBe('jkt-a');
    expect(await store.addIfAbsent('bind:s1', 'jkt-c', 60)).toBe('jkt-a');
    await store.delete('bind:s1');
    expect(await store.addIfAbsent('bind:s1', 'jkt-d', 60)).toBeUndefined();
    // The key as Redis holds it: prefixed, with its TTL.
    const reader = tokenSec.redisStore({ client, prefix: '' });
    expect(await reader.addIfAbsent('tokensec:bind:s1', 'x', 1)).toBe('jkt-d');
    const send = (args: string[]) =>
      'call' in client
        ? (client as Redis).call(args[0]!, ...args.slice(1))
        : (client as { sendCommand(a: string[]): Promise<unknown> }).sendCommand(args);
    const ttl = Number(await send(['TTL', 'tokensec:bind:s1']));
    expect(ttl).toBeGreaterThan(55);
    expect(ttl).toBeLessThanOrEqual(60);
    // The 3.0 name returns the same store.
    const legacy = tokenSec.redisReplayStore({ client, prefix: 'other:' });
    expect([await legacy.addIfAbsent('k', '1', 60), await legacy.addIfAbsent('k', '1', 60)]).toEqual([undefined, '1']);
  });

  it('dpop() answers 503 ERR_TOKENSEC_STORE_UNAVAILABLE while redis-server is stopped, never hangs, and passes again once it is back', async () => {
    const { redis, client, errors } = await redisClient(setup);
    const events: DpopEvent[] = [];
    const app = express();
    app.get(
      '/api/me',
      tokenSec.dpop({
        replayStore: tokenSec.redisStore({ client }),
        storeTimeout: 500,
        verifyToken: (token) => JSON.parse(Buffer.from(token, 'base64url').toString()),
        onEvent: (event) => events.push(event),
      }),
      (_req, res) => res.json({ ok: true }),
    );
    app.use(tokenSec.errorHandler());
    const server = await listen(app);
    cleanups.push(server.close);
    const keyPair = await dpopPackage.generateKeyPair('ES256');
    const jkt = await dpopPackage.calculateThumbprint(keyPair.publicKey);
    const token = Buffer.from(JSON.stringify({ cnf: { jkt } })).toString('base64url');
    const url = `${server.origin}/api/me`;
    const proof = () => dpopPackage.generateProof(keyPair, url, 'GET', currentNonce(), token);
    // A hang fails the test (the fetch gives up after 10 s) instead of stalling it.
    const send = async (dpop: string) => {
      const response = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop }, signal: AbortSignal.timeout(10_000) });
      return { status: response.status, code: ((await response.json()) as { code?: string }).code };
    };

    const first = await proof();
    expect(await send(first)).toEqual({ status: 200, code: undefined });
    expect(await send(first)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' });

    await redis.stop(); // in the middle of the run
    const during = await Promise.all([proof(), proof(), proof()].map(async (p) => send(await p)));
    expect(during).toEqual(Array(3).fill({ status: 503, code: 'ERR_TOKENSEC_STORE_UNAVAILABLE' }));
    // The replayed proof too: a store that cannot answer never says "replayed".
    expect(await send(first)).toEqual({ status: 503, code: 'ERR_TOKENSEC_STORE_UNAVAILABLE' });
    // The client reports the lost connection to its listener (node-redis would crash the process without one).
    await vi.waitFor(() => expect(errors.length).toBeGreaterThan(0), { timeout: 5000, interval: 100 });
    expect(events.filter((e) => e.code === 'ERR_TOKENSEC_STORE_UNAVAILABLE')).toHaveLength(4);
    expect(events.at(-1)).toMatchObject({ outcome: 'failed', status: 503, algorithm: 'ES256', jkt });

    const restarted = await startRedis(redis.port);
    cleanups.push(() => restarted.stop());
    let back: { status: number; code?: string | undefined } | undefined;
    for (let attempt = 0; attempt < 120 && back?.status !== 200; attempt++) {
      back = await send(await proof());
      if (back.status !== 200) {
        // Back empty (no persistence): the restart guard refuses proofs dated up to clockSkew after it noticed.
        expect([
          { status: 503, code: 'ERR_TOKENSEC_STORE_UNAVAILABLE' },
          { status: 503, code: 'ERR_TOKENSEC_STORE_RESTARTED' },
        ]).toContainEqual(back);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    expect(back).toEqual({ status: 200, code: undefined });
  }, 60_000);
});

/** The Redis key the store (default prefix) keeps `key` under: on one Redis, and on a Redis Cluster (with its shard's hash tag). */
const inRedis = (key: string) => storedKey('tokensec:', key);
const inCluster = (key: string) => storedKey('tokensec:', key, true);

interface ClusterSetup {
  name: string;
  /** The client, not connected yet, and how to connect it. */
  make(
    cluster: RedisCluster,
    errors: Error[],
  ): { client: Parameters<typeof tokenSec.redisStore>[0]['client']; connect(): Promise<unknown>; close(): Promise<void> };
}

const clusterSetups: ClusterSetup[] = [
  {
    name: 'node-redis createCluster() (offline queue off on every node)',
    make(cluster, errors) {
      const client = createCluster({
        rootNodes: cluster.nodes.map((node) => ({ url: node.url })),
        defaults: { disableOfflineQueue: true, socket: { connectTimeout: 1000, reconnectStrategy: () => 250 } },
      });
      client.on('error', (error: Error) => errors.push(error));
      return { client, connect: () => client.connect(), close: async () => void (await client.close()) };
    },
  },
  {
    name: 'ioredis Cluster',
    make(cluster, errors) {
      const client = new Cluster(
        cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
        { lazyConnect: true, clusterRetryStrategy: () => 250, redisOptions: { connectTimeout: 1000 } },
      );
      client.on('error', (error: Error) => errors.push(error));
      return { client, connect: () => client.connect(), close: async () => client.disconnect() };
    },
  },
];

describe('on a three-master Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    await markClusterInUse(cluster); // a cluster in use, not a new one (the restart test below plays that)
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /** Sorts `items` by the master that holds the store key `keyOf(item)` names. */
  function byNode<T>(items: T[], keyOf: (item: T) => string): Map<ClusterNode, T[]> {
    const sorted = new Map<ClusterNode, T[]>(cluster.nodes.map((node) => [node, []]));
    for (const item of items) sorted.get(cluster.nodeOf(keyOf(item)))!.push(item);
    return sorted;
  }

  describe.each(clusterSetups)('$name', (setup) => {
    it('a store made before the client connects works once it has; each key is on the master of its slot, with its TTL', async () => {
      const errors: Error[] = [];
      const { client, connect, close } = setup.make(cluster, errors);
      const store = tokenSec.redisStore({ client });
      await connect();
      cleanups.push(close);
      // Two keys for each master.
      const keys: string[] = [];
      for (let i = 0; cluster.nodes.some((node) => keys.filter((key) => cluster.nodeOf(inCluster(key)) === node).length < 2); i++) {
        const key = `bind:${setup.name}:${i}`;
        if (keys.filter((other) => cluster.nodeOf(inCluster(other)) === cluster.nodeOf(inCluster(key))).length < 2) keys.push(key);
      }
      const sorted = byNode(keys, (key) => inCluster(key));
      // The test's slot arithmetic agrees with Redis's, hash tags included.
      for (const key of ['tokensec:{s1}:bind', 'a{}b', 'a{b', '{}', 'x{y}z{w}'])
        expect([key, slotOf(key)]).toEqual([key, Number(await cluster.command(cluster.nodes[0]!, 'CLUSTER', 'KEYSLOT', key))]);
      for (const [node, onNode] of sorted) {
        for (const key of onNode) {
          expect(await store.addIfAbsent(key, 'jkt-a', 60)).toBeUndefined();
          expect(await store.addIfAbsent(key, 'jkt-b', 60)).toBe('jkt-a');
          expect(slotOf(inCluster(key))).toBe(Number(await cluster.command(node, 'CLUSTER', 'KEYSLOT', inCluster(key))));
          // Asked of that master directly (redis-cli without -c does not follow a MOVED): it holds the key.
          expect(await cluster.command(node, 'GET', inCluster(key))).toBe('jkt-a');
          const ttl = Number(await cluster.command(node, 'TTL', inCluster(key)));
          expect(ttl).toBeGreaterThan(55);
          expect(ttl).toBeLessThanOrEqual(60);
          await store.delete(key);
          expect(await cluster.command(node, 'EXISTS', inCluster(key))).toBe('0');
          expect(await store.addIfAbsent(key, 'jkt-c', 60)).toBeUndefined();
        }
      }
      expect(errors).toEqual([]);
    });

    it('one master stopped: proofs whose ids live in its slots get 503 within storeTimeout, the others pass; back with its data, nothing is accepted twice', async () => {
      const errors: Error[] = [];
      const { client, connect, close } = setup.make(cluster, errors);
      await connect();
      cleanups.push(close);
      const app = express();
      app.get(
        '/api/me',
        tokenSec.dpop({
          replayStore: tokenSec.redisStore({ client }),
          storeTimeout: 500,
          verifyToken: (token) => JSON.parse(Buffer.from(token, 'base64url').toString()),
          // About the store: nonces (the default) off, so that the dpop package's proofs need no round trip.
          nonce: false,
        }),
        (_req, res) => res.json({ ok: true }),
      );
      app.use(tokenSec.errorHandler());
      const server = await listen(app);
      cleanups.push(server.close);
      const keyPair = await dpopPackage.generateKeyPair('ES256');
      const jkt = await dpopPackage.calculateThumbprint(keyPair.publicKey);
      const token = Buffer.from(JSON.stringify({ cnf: { jkt } })).toString('base64url');
      const url = `${server.origin}/api/me`;
      const jti = (proof: string) => (JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
      /** At least `count` fresh proofs for each master, sorted by the master that will hold their ids. */
      const proofs = async (count: number) => {
        const sorted = new Map<ClusterNode, string[]>(cluster.nodes.map((node) => [node, []]));
        while ([...sorted.values()].some((onNode) => onNode.length < count)) {
          const proof = await dpopPackage.generateProof(keyPair, url, 'GET', undefined, token);
          sorted.get(cluster.nodeOf(inCluster(replayKey(jkt, jti(proof)))))!.push(proof);
        }
        return sorted;
      };
      let slowest = 0;
      const send = async (dpop: string) => {
        const started = performance.now();
        const response = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop }, signal: AbortSignal.timeout(10_000) });
        slowest = Math.max(slowest, performance.now() - started);
        return { status: response.status, code: ((await response.json()) as { code?: string }).code };
      };
      const OK = { status: 200, code: undefined };
      const DOWN = { status: 503, code: 'ERR_TOKENSEC_STORE_UNAVAILABLE' };
      const REPLAYED = { status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' };
      const victim = cluster.nodes[1]!;
      const others = cluster.nodes.filter((node) => node !== victim);

      const accepted = await proofs(3);
      for (const onNode of accepted.values()) for (const proof of onNode) expect(await send(proof)).toEqual(OK);
      await victim.stop('save');
      // Twice: at once (the others still call it up) and once they have marked it failed.
      for (const phase of ['just stopped', 'marked failed']) {
        if (phase === 'marked failed') await cluster.settled();
        slowest = 0;
        const during = await proofs(3);
        for (const proof of during.get(victim)!) expect([phase, await send(proof)]).toEqual([phase, DOWN]);
        for (const node of others) for (const proof of during.get(node)!) expect([phase, await send(proof)]).toEqual([phase, OK]);
        // A replay is never answered "accepted": 503 where its id's master is down, "replayed" elsewhere.
        for (const proof of accepted.get(victim)!) expect(await send(proof)).toEqual(DOWN);
        for (const node of others) for (const proof of accepted.get(node)!) expect(await send(proof)).toEqual(REPLAYED);
        expect(slowest).toBeLessThan(5000); // storeTimeout is 500 ms; generous for a busy machine
      }

      await victim.start();
      await cluster.settled();
      // Bounded wait for the client to find it again; meanwhile only 503s.
      await until(
        async () => {
          const [proof] = (await proofs(1)).get(victim) ?? [];
          if (!proof) return false;
          const answer = await send(proof);
          if (answer.status !== 200) expect(answer).toEqual(DOWN);
          return answer.status === 200;
        },
        20_000,
        'the client to reach the restarted master',
      );
      // It came back with its data (SHUTDOWN SAVE): every proof accepted before the outage is still a replay.
      for (const onNode of accepted.values()) for (const proof of onNode) expect(await send(proof)).toEqual(REPLAYED);
    }, 60_000);
  });
});

describe('node-redis createSentinel() (the master a Sentinel follows)', () => {
  it('add-if-absent, TTL and delete go to the master', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const sentinel = await startSentinel(redis.port);
    cleanups.push(() => sentinel.stop());
    const errors: Error[] = [];
    const client = createSentinel({ name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: sentinel.port }] });
    client.on('error', (error: Error) => errors.push(error));
    const store = tokenSec.redisStore({ client });
    await client.connect();
    cleanups.push(async () => void (await client.close()));
    expect(await store.addIfAbsent('bind:s1', 'jkt-a', 60)).toBeUndefined();
    expect(await store.addIfAbsent('bind:s1', 'jkt-b', 60)).toBe('jkt-a');
    // On the master itself, with its TTL.
    const direct = await createClient({ url: redis.url }).connect();
    cleanups.push(async () => void (await direct.close()));
    expect(await direct.get(inRedis('bind:s1'))).toBe('jkt-a');
    const ttl = await direct.ttl(inRedis('bind:s1'));
    expect(ttl).toBeGreaterThan(55);
    expect(ttl).toBeLessThanOrEqual(60);
    await store.delete('bind:s1');
    expect(await direct.exists(inRedis('bind:s1'))).toBe(0);
    expect(errors).toEqual([]);
  });
});
