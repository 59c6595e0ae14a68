/**
 * `redisStore()`: the AtomicStore shared by every process of an app, in Redis (7 or later):
 * `SET key value NX EX ttl GET` sets the key unless it is there and answers the value it found,
 * in one atomic command. Takes a node-redis (v4 and later) or an ioredis client.
 */
import { checkOptions, optionError } from './options.js';
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
 * The part of an ioredis client the Redis store uses.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * const client: IoRedisLikeClient = new Redis('redis://127.0.0.1:6379');
 * ```
 */
export interface IoRedisLikeClient {
  /** Sends one Redis command by name with its arguments, and resolves its reply. */
  call(command: string, ...args: string[]): Promise<unknown>;
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
  /** A node-redis (`redis`, v4 and later) or ioredis client; both are optional peer dependencies. */
  client: NodeRedisLikeClient | IoRedisLikeClient;
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
  const client = given.client as Partial<NodeRedisLikeClient & IoRedisLikeClient> | undefined;
  const prefix = given.prefix ?? 'tokensec:';
  if (typeof prefix !== 'string') throw optionError('redisStore', 'option "prefix" must be a string, e.g. "myapp:tokensec:".');
  let command: (args: string[]) => Promise<unknown>;
  if (client && typeof client.call === 'function') {
    // ioredis (it also has a sendCommand, which takes its own Command objects).
    const call = client.call.bind(client);
    command = ([name = '', ...args]) => call(name, ...args);
  } else if (client && typeof client.sendCommand === 'function') {
    command = client.sendCommand.bind(client);
  } else {
    throw optionError(
      'redisStore',
      'option "client" must be a node-redis client (createClient() from "redis" v4 or later) or an ioredis client (new Redis() from "ioredis").',
    );
  }
  return {
    async addIfAbsent(key, value, ttlSeconds, _owner, since) {
      const found = await addWithRestartMarker(command, prefix, key, value, ttlSeconds, since);
      if (found === null || found === undefined) return undefined;
      return typeof found === 'string' ? found : String(found);
    },
    async delete(key) {
      await command(['DEL', prefix + key]);
    },
  };
}

/**
 * `SET key value NX EX ttl GET` together with the restart marker, in one script (restart-guard.ts):
 * the value found, or a refusal when the key is new, the store noticed it had lost its data and
 * the key could have been set before that (`since`).
 */
async function addWithRestartMarker(
  command: (args: string[]) => Promise<unknown>,
  prefix: string,
  key: string,
  value: string,
  ttlSeconds: number,
  since: number | undefined,
): Promise<unknown> {
  const ttl = String(Math.max(1, Math.ceil(ttlSeconds)));
  // A cluster client needs guardedKeys(prefix, key, true): both keys in one slot.
  const { stored, marker: markerKey } = guardedKeys(prefix, key);
  const answer = await command(['EVAL', ADD_WITH_MARKER_SCRIPT, '2', markerKey, stored, value, ttl, newRestartMarker()]);
  const [marker, found] = Array.isArray(answer) ? (answer as unknown[]) : [];
  if (found === null || found === undefined) refuseKeysFromBeforeRestart(since, noticedAt(marker));
  return found;
}
