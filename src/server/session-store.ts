/**
 * `tokenSec.boundedSessionStore()`: an express-session store (connect-redis, or any other) whose
 * calls answer within a time limit, and whose failures carry a stable code. express-session hands
 * a store's error to `next(err)` as it is (a bare 500 by Express's default handler) and waits as
 * long as the store does; behind this wrapper, `tokenSec.errorHandler()` answers 503
 * ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE within `timeout`, and a store that comes back is used
 * again at the next request.
 */
import { TokenSecError } from '../protocol/errors.js';
import { checkInteger, checkOptions, optionError } from './options.js';
import { DEFAULT_STORE_TIMEOUT } from './store.js';

/**
 * Options of `tokenSec.boundedSessionStore()`.
 *
 * @example
 * ```ts
 * const options: BoundedSessionStoreOptions = { timeout: 1000 };
 * ```
 */
export interface BoundedSessionStoreOptions {
  /** Milliseconds a session store call may take (1 to 60000, default 1000) before the request gets 503 ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE. */
  timeout?: number;
}

type Callback = (err?: unknown, value?: unknown) => void;

/** The express-session store methods that take a callback last and are called per request. */
const BOUNDED = ['get', 'set', 'touch', 'destroy'] as const;

const unavailable = (cause?: unknown) =>
  new TokenSecError(
    'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE',
    'The session store did not answer; try again later.',
    503,
    cause === undefined ? undefined : { cause },
  );

/**
 * Wraps an express-session store: `get`, `set`, `touch` and `destroy` answer within `timeout`
 * milliseconds, and any error they give (or the time running out) becomes a TokenSecError 503
 * ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE, which `tokenSec.errorHandler()` answers with its code (an
 * `ENOENT`, express-session's "no such session", passes unchanged). A late answer is ignored. The
 * store itself is not changed: the wrapper inherits everything else from it (events, `all`,
 * `clear`), so pass the wrapper to `session({ store })`. Bound the client's own commands too
 * (docs/PRODUCTION.md), so that nothing waits in its queue after a request has given up.
 *
 * @example
 * ```ts
 * import { RedisStore } from 'connect-redis';
 * import session from 'express-session';
 * import { createClient } from 'redis';
 * import tokenSec from 'tokensec';
 *
 * const client = createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true });
 * client.on('error', () => {});
 * await client.connect();
 * const store = tokenSec.boundedSessionStore(new RedisStore({ client }), { timeout: 1000 });
 * const sessions = session({ store, secret: 'a long random secret', resave: false, saveUninitialized: false });
 * ```
 */
export function boundedSessionStore<S extends object>(store: S, options: BoundedSessionStoreOptions = {}): S {
  const given = checkOptions('boundedSessionStore', options, ['timeout']);
  const timeout = checkInteger('boundedSessionStore', 'timeout', given.timeout, DEFAULT_STORE_TIMEOUT, 1, 60_000, 'milliseconds');
  const methods = store as Partial<Record<(typeof BOUNDED)[number], (...args: unknown[]) => unknown>>;
  if (typeof store !== 'object' || store === null || typeof methods.get !== 'function' || typeof methods.set !== 'function') {
    throw optionError(
      'boundedSessionStore',
      'the first argument must be an express-session store, e.g. new RedisStore({ client }) from "connect-redis".',
    );
  }
  const bounded = Object.create(store) as Record<string, unknown>;
  for (const name of BOUNDED) {
    const method = methods[name];
    if (typeof method !== 'function') continue;
    bounded[name] = (...args: unknown[]) => {
      const done = typeof args.at(-1) === 'function' ? (args.pop() as Callback) : undefined;
      return new Promise((resolve, reject) => {
        let settled = false;
        const finish = (err: unknown, value?: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const error = err === undefined || err === null ? undefined : isNotFound(err) ? err : unavailable(err);
          if (done) done(error, value);
          if (error && !done) reject(error);
          else resolve(value);
        };
        const timer = setTimeout(() => finish(unavailable()), timeout);
        try {
          const answer = method.call(store, ...args, (err: unknown, value: unknown) => finish(err, value));
          if (typeof (answer as { then?: unknown } | undefined)?.then === 'function') {
            (answer as Promise<unknown>).then(undefined, (err: unknown) => finish(err ?? unavailable()));
          }
        } catch (err) {
          finish(err ?? unavailable());
        }
      });
    };
  }
  return bounded as S;
}

/** express-session's "no such session" from a store: not a failure. */
const isNotFound = (err: unknown) => typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
