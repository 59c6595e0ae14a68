/**
 * `redisStore()`: the AtomicStore shared by every process of an app, in Redis (7 or later):
 * `SET key value NX EX ttl GET` sets the key unless it is there and answers the value it found,
 * in one atomic command, together with the restart guard's marker (restart-guard.ts). Takes a
 * node-redis (v4 and later) or an ioredis client, on one Redis or on a Redis Cluster (each command
 * names keys of one slot only, so it runs on that slot's master).
 */
import { checkOptions, describe, optionError } from './options.js';
import { ADD_WITH_MARKER_SCRIPT, guardedKeys, newRestartMarker, noticedAt, refuseKeysFromBeforeRestart } from './restart-guard.js';
import type { AtomicStore } from './store.js';

/**
 * The part of a node-redis (v4 and later) client the Redis store uses.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const client: NodeRedisLikeClient = createClient({ url: 'redis://127.0.0.1:6379' });
 * ```
 */
export interface NodeRedisLikeClient {
  /** Sends one Redis command, name first (`['SET', key, value, 'NX']`), and resolves its reply. */
  sendCommand(args: string[]): Promise<unknown>;
}

/**
 * The part of a node-redis (v4 and later) cluster client the Redis store uses: its `sendCommand`
 * takes the key that routes the command to its slot's master, and a read-only flag.
 *
 * @example
 * ```ts
 * import { createCluster } from 'redis';
 * const client: NodeRedisClusterLikeClient = createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] });
 * ```
 */
export interface NodeRedisClusterLikeClient {
  /** Sends one command to the master of `firstKey`'s slot, name first in `args`, and resolves its reply. */
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  /** The client of one node: the store does not call it; it tells a cluster client from the others. */
  nodeClient(node: never): unknown;
}

/**
 * The part of a node-redis (v5) Sentinel client the Redis store uses: its `sendCommand` takes a
 * read-only flag (false: TokenSec writes, so the command goes to the master).
 *
 * @example
 * ```ts
 * import { createSentinel } from 'redis';
 * const client: NodeRedisSentinelLikeClient = createSentinel({ name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: 26379 }] });
 * ```
 */
export interface NodeRedisSentinelLikeClient {
  /** Sends one command, name first in `args` (to the master when `isReadonly` is false), and resolves its reply. */
  sendCommand(isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  /** The master it follows: the store does not call it; it tells a Sentinel client from the others. */
  getMasterNode(): unknown;
}

/**
 * The part of an ioredis client (`Redis` or `Cluster`) the Redis store uses.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * const client: IoRedisLikeClient = new Redis('redis://127.0.0.1:6379');
 * ```
 */
export interface IoRedisLikeClient {
  /** Sends one Redis command by name with its arguments, and resolves its reply (a cluster finds the keys' slot itself). */
  call(command: string, ...args: string[]): Promise<unknown>;
  /** `true` on an ioredis `Cluster`: the store then spreads its keys over hash tags (`guardedKeys`). */
  readonly isCluster?: boolean;
}

/**
 * Options of `redisStore()`.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import tokenSec from 'tokensec';
 * const client = createClient({ url: 'redis://127.0.0.1:6379' });
 * const store = tokenSec.redisStore({ client, prefix: 'myapp:tokensec:' });
 * ```
 */
export interface RedisStoreOptions {
  /**
   * A node-redis (`redis`, v4 and later) client, pool, cluster or Sentinel client, or an ioredis client or cluster;
   * both packages are optional peer dependencies. Connected or not yet: the store sends nothing
   * until its first call.
   */
  client: NodeRedisLikeClient | NodeRedisClusterLikeClient | NodeRedisSentinelLikeClient | IoRedisLikeClient;
  /** Prefix of every key. Default `tokensec:` (proof ids are then `tokensec:jti:<jkt>:<jti>`). */
  prefix?: string;
}

/**
 * An AtomicStore in Redis (7 or later), shared by every process that uses the same Redis. Each
 * call is one command; TokenSec bounds it with the `storeTimeout` option (default 1000 ms), after
 * which the request gets 503 ERR_TOKENSEC_STORE_UNAVAILABLE, so a Redis that is down or slow
 * never hangs a request. Set Redis's `maxmemory-policy` to `noeviction`: an evicted id would be
 * accepted again.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import express from 'express';
 * import tokenSec from 'tokensec';
 *
 * const client = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
 * client.on('error', (error: Error) => console.error('redis:', error.message)); // node-redis needs a listener
 * await client.connect();
 * const verifyToken = async () => ({ cnf: { jkt: 'a thumbprint' } });
 * const app = express();
 * app.use('/api', tokenSec.dpop({ verifyToken, replayStore: tokenSec.redisStore({ client }) }));
 * ```
 */
export function redisStore(options: RedisStoreOptions): AtomicStore {
  const given = checkOptions('redisStore', options, ['client', 'prefix']);
  const prefix = given.prefix ?? 'tokensec:';
  if (typeof prefix !== 'string') throw optionError('redisStore', 'option "prefix" must be a string, e.g. "myapp:tokensec:".');
  const command = redisCommand(given.client);
  // A script runs on one slot of a cluster: there each key shares a hash tag with its bucket's marker.
  const sharded = isClusterClient(given.client);
  return {
    async addIfAbsent(key, value, ttlSeconds, _owner, since) {
      const found = await addWithRestartMarker(command, guardedKeys(prefix, key, sharded), value, ttlSeconds, since);
      if (found === null || found === undefined) return undefined;
      return typeof found === 'string' ? found : String(found);
    },
    async delete(key) {
      const stored = storedKey(prefix, key, sharded);
      await command(stored, ['DEL', stored]);
    },
  };
}

/**
 * The Redis key under which the store keeps `key`; its slot is where the command goes on a cluster.
 * One Redis: `<prefix><key>`; a Redis Cluster (`sharded`): `<prefix>{tsN}<key>` (`guardedKeys`).
 */
export const storedKey = (prefix: string, key: string, sharded = false): string => guardedKeys(prefix, key, sharded).stored;

/**
 * `SET key value NX EX ttl GET` together with the restart marker, in one script (restart-guard.ts):
 * the value found, or a refusal when the key is new, the store noticed it had lost its data and
 * the key could have been set before that (`since`). Both keys are in one slot, so the command
 * goes to the master that holds them.
 */
async function addWithRestartMarker(
  command: RedisCommand,
  keys: { stored: string; marker: string },
  value: string,
  ttlSeconds: number,
  since: number | undefined,
): Promise<unknown> {
  const ttl = String(Math.max(1, Math.ceil(ttlSeconds)));
  const answer = await command(keys.stored, [
    'EVAL',
    ADD_WITH_MARKER_SCRIPT,
    '2',
    keys.marker,
    keys.stored,
    value,
    ttl,
    newRestartMarker(),
  ]);
  const [marker, found] = Array.isArray(answer) ? (answer as unknown[]) : [];
  if (found === null || found === undefined) refuseKeysFromBeforeRestart(since, noticedAt(marker));
  return found;
}

/**
 * Whether `client` is a Redis Cluster client (node-redis `createCluster()`, ioredis `Cluster`),
 * whose keys live on several masters: each master that comes back empty must be noticed by a
 * marker in its own slots.
 */
export function isClusterClient(client: unknown): boolean {
  if (typeof client !== 'object' || client === null) return false;
  const shape = client as Record<string, unknown>;
  if (typeof shape.call === 'function') return shape.isCluster === true;
  return typeof shape.sendCommand === 'function' && typeof shape.nodeClient === 'function';
}

/**
 * Sends one command to Redis and resolves its answer. Every key the command names is in the slot
 * of `key`: a cluster client routes the command by it (TokenSec's commands name one key each; a
 * command that needs two gives them one hash tag, `{...}`, so they share a slot).
 */
export type RedisCommand = (key: string, args: string[]) => Promise<unknown>;

const ACCEPTED_CLIENTS =
  'a node-redis client, pool, cluster or sentinel (createClient(), createClientPool(), createCluster() or createSentinel() from "redis" v4 or later) ' +
  'or an ioredis client or cluster (new Redis() or new Cluster() from "ioredis")';

/**
 * How commands reach `client`, decided once when the store is made, from the client's shape (before
 * or after it connects):
 * - ioredis `Redis` and `Cluster`: `call(name, ...args)`; a cluster finds the key itself.
 * - node-redis cluster (`createCluster()`): `sendCommand(firstKey, isReadonly, args)`, routed by `key`.
 * - node-redis Sentinel (`createSentinel()`): `sendCommand(isReadonly, args)`, to the master.
 * - node-redis client and pool (`createClient()`, `createClientPool()`): `sendCommand(args)`.
 * Anything else is refused here with what is accepted, never at the first request: a client whose
 * commands resolve to nothing (node-redis's callback-style `legacy()` client) would make every
 * proof look new.
 */
export function redisCommand(client: unknown): RedisCommand {
  const shape = (typeof client === 'object' && client !== null ? client : {}) as Record<string, unknown>;
  const has = (name: string) => typeof shape[name] === 'function';
  if (has('call')) {
    const call = (shape.call as (command: string, ...args: string[]) => Promise<unknown>).bind(client);
    return (_key, [name = '', ...args]) => promised(call(name, ...args));
  }
  if (has('sendCommand') && has('nodeClient')) {
    const send = (shape.sendCommand as (firstKey: string, isReadonly: boolean, args: string[]) => Promise<unknown>).bind(client);
    return (key, args) => promised(send(key, false, args));
  }
  if (has('sendCommand') && has('getMasterNode')) {
    // node-redis Sentinel (createSentinel()): writes go to the master it follows.
    const send = (shape.sendCommand as (isReadonly: boolean, args: string[]) => Promise<unknown>).bind(client);
    return (_key, args) => promised(send(false, args));
  }
  if (has('sendCommand') && has('connect') && 'isOpen' in shape) {
    const send = (shape.sendCommand as (args: string[]) => Promise<unknown>).bind(client);
    return (_key, args) => promised(send(args));
  }
  throw optionError('redisStore', `option "client" must be ${ACCEPTED_CLIENTS}; got ${describeClient(client)}.`);
}

/** A client's answer, which must be a promise (a callback-style client answers nothing). */
function promised(answer: unknown): Promise<unknown> {
  if (typeof (answer as { then?: unknown } | null | undefined)?.then !== 'function') {
    return Promise.reject(new TypeError('The Redis client did not answer with a promise.'));
  }
  return answer as Promise<unknown>;
}

/** What a refused client looks like, in words that point at the usual mistake. */
function describeClient(client: unknown): string {
  if (typeof (client as { then?: unknown } | null | undefined)?.then === 'function') {
    return 'a promise (await client.connect() before passing the client, or pass the client and connect it later)';
  }
  if (typeof client !== 'object' || client === null) return describe(client);
  if (
    typeof (client as { sendCommand?: unknown }).sendCommand === 'function' &&
    typeof (client as { connect?: unknown }).connect !== 'function'
  ) {
    return "an object with sendCommand but without connect (node-redis's legacy() client or a multi(): pass the client itself)";
  }
  return 'an object with neither call() (ioredis) nor sendCommand() and connect() (node-redis)';
}
