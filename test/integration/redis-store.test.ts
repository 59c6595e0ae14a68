/**
 * redisStore() against a real redis-server, with node-redis and with ioredis, each set up as
 * README shows it (an `error` listener) and with its offline queue turned off: add-if-absent,
 * TTL and delete; then tokenSec.dpop() on it while redis-server is STOPPED in the middle of the
 * run: every request is answered 503 ERR_TOKENSEC_STORE_UNAVAILABLE (never a hang, never
 * "replayed"), and requests pass again once Redis is back.
 */
import * as dpopPackage from 'dpop';
import express from 'express';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import tokenSec, { type AtomicStore, type DpopEvent } from '../../src/index.js';
import { listen } from '../support/helpers.js';
import { currentNonce } from '../support/proofs.js';
import { markStoreInUse, startRedis, type RedisServer } from '../support/redis.js';

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
