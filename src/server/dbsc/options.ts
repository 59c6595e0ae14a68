/**
 * `tokenSec.dbsc()`'s options, checked once when it is created, and the session store contract.
 */
import type { IncomingMessage } from 'node:http';
import { assertClock, checkBoolean, checkInteger, checkOptions, describe, optionError, type MaybePromise } from '../options.js';
import { checkStore, checkStoreTimeout, type AtomicStore } from '../store.js';
import { memoryStore } from '../memory-store.js';
import { expressSessionState, type DbscBinding, type DbscState } from './session-record.js';
import { DBSC_ALGORITHMS, type DbscAlgorithm } from './verify.js';

export type { DbscBinding } from './session-record.js';

/**
 * Where each login's DBSC binding lives: plain functions of the request, no Express needed.
 * The default keeps it in express-session: in `req.session.tokenSecDbsc` and, once registered, in a
 * record of its own in the session store, which no concurrent save of the session can erase. Your
 * store must not lose a binding to concurrent requests either: `set` is called once at login (the
 * pending registration) and once at registration, while the page's other requests may be running.
 *
 * @example
 * ```ts
 * const store = {
 *   get: (req) => sessions.get(sessionIdOf(req))?.dbsc,
 *   set: (req, binding) => sessions.update(sessionIdOf(req), { dbsc: binding }),
 * };
 * ```
 */
export interface DbscSessionStore<Req = IncomingMessage> {
  /** The login's binding, or undefined when this session has none. */
  get(req: Req): MaybePromise<DbscBinding | undefined>;
  /** Replaces the login's binding; resolves once it is kept. */
  set(req: Req, binding: DbscBinding): MaybePromise<void>;
}

/**
 * Options of `tokenSec.dbsc()`.
 *
 * @example
 * ```ts
 * const dbsc = tokenSec.dbsc({ secret: process.env.DBSC_SECRET, cookieMaxAge: 300 });
 * ```
 */
export interface DbscOptions<Req = IncomingMessage> {
  /** Key of the HMAC on challenges and bound cookies, shared by every process: 32 bytes or more. Required. */
  secret: string | Uint8Array;
  /** Where the browser POSTs its registration. Default `/tokensec/dbsc/registration`. */
  registrationPath?: string;
  /** Where the browser POSTs its refreshes. Default `/tokensec/dbsc/refresh`. */
  refreshPath?: string;
  /** The short-lived bound cookie's name. Default `__Host-tokensec-dbsc` (Secure, Path=/, no Domain). */
  cookieName?: string;
  /** Seconds the bound cookie stays live: a copied cookie jar works at most this long. Default 300. */
  cookieMaxAge?: number;
  /** Seconds a challenge may be used (once). Default 300. */
  challengeTtl?: number;
  /** Algorithms offered to the browser, in order of preference. Default `['ES256', 'RS256']`. */
  algorithms?: DbscAlgorithm[];
  /** The app session's DBSC binding. Default: express-session's session, and a record beside it in its store. */
  store?: DbscSessionStore<Req>;
  /** Used challenges, shared by every process (Redis across processes). Default: memory, one process. */
  challengeStore?: AtomicStore;
  /** Milliseconds a store call may take before the request fails with 503. Default 1000. */
  storeTimeout?: number;
  /** The site's origin(s), e.g. `https://app.example`, against which an `aud` claim is checked. Default: from the Host header. */
  origin?: string | string[];
  /** Refuse tokenSec.handshake() on a bound session without a live bound cookie (401). Default true. */
  handshake?: boolean;
  /** @deprecated Still accepted, undocumented, removed in 4.0: tests freeze the clock with vitest's fake timers (test/support/clock.ts). */
  now?: () => number;
}

export interface ResolvedDbsc<Req> {
  key: Buffer;
  registrationPath: string;
  refreshPath: string;
  cookieName: string;
  cookieMaxAge: number;
  /** The `attributes` of the session instructions, the same as those of the Set-Cookie. */
  cookieAttributes: string;
  challengeTtl: number;
  algorithms: readonly DbscAlgorithm[];
  store: DbscState<Req>;
  challengeStore: AtomicStore;
  storeTimeout: number;
  origins: readonly string[] | undefined;
  handshake: boolean;
  /** Unix seconds, rounded down: what challenges and bound cookies are checked against. */
  nowSeconds: () => number;
  /** Unix milliseconds. */
  nowMs: () => number;
}

const KNOWN = [
  'secret',
  'registrationPath',
  'refreshPath',
  'cookieName',
  'cookieMaxAge',
  'challengeTtl',
  'algorithms',
  'store',
  'challengeStore',
  'storeTimeout',
  'origin',
  'handshake',
  'now',
] as const;

const MIN_SECRET_BYTES = 32;
const COOKIE_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The app's own store: a registration is the set() of the registered binding. */
function appState<Req>(store: DbscSessionStore<Req>): DbscState<Req> {
  return {
    get: (req) => store.get(req),
    request: (req, pending) => store.set(req, { pending }),
    register: (req, binding) => store.set(req, binding),
    refreshed: () => undefined,
  };
}

function path(name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\/[\x21-\x7e]*$/.test(value) || /[?#"\\]/.test(value)) {
    throw optionError(
      'dbsc',
      `option "${name}" must be an absolute path such as "${fallback}" (no query, no quotes), got ${describe(value)}.`,
    );
  }
  return value;
}

function secretKey(secret: unknown): Buffer {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret instanceof Uint8Array ? Buffer.from(secret) : undefined;
  if (!bytes || bytes.length < MIN_SECRET_BYTES) {
    throw optionError(
      'dbsc',
      `option "secret" is required: a string or bytes of at least ${MIN_SECRET_BYTES} bytes, the same in every process ` +
        "(e.g. crypto.randomBytes(32).toString('base64url'), kept with your session secret).",
    );
  }
  return bytes;
}

function origins(value: unknown): string[] | undefined {
  if (value === undefined && process.env.NODE_ENV === 'production') {
    throw optionError(
      'dbsc',
      'option "origin" is required when NODE_ENV is production: set it to the origin(s) the site is served at, e.g. "https://app.example". Without it DBSC builds its URLs from the request\'s Host header, which a client chooses.',
    );
  }
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  const valid = list.length > 0 && list.every((o) => typeof o === 'string' && /^https?:\/\/[^/?#]+$/.test(o));
  if (!valid) throw optionError('dbsc', 'option "origin" must be an origin such as "https://app.example" (no path), or an array of them.');
  return list as string[];
}

export function resolveDbscOptions<Req>(options: unknown): ResolvedDbsc<Req> {
  if (options === undefined) throw optionError('dbsc', 'options are required: at least { secret }.');
  const given = checkOptions('dbsc', options, KNOWN) as Partial<Record<(typeof KNOWN)[number], unknown>>;
  const registrationPath = path('registrationPath', given.registrationPath, '/tokensec/dbsc/registration');
  const refreshPath = path('refreshPath', given.refreshPath, '/tokensec/dbsc/refresh');
  if (registrationPath === refreshPath) throw optionError('dbsc', 'options "registrationPath" and "refreshPath" must differ.');
  const cookieName = given.cookieName ?? '__Host-tokensec-dbsc';
  if (typeof cookieName !== 'string' || !COOKIE_NAME.test(cookieName)) {
    throw optionError('dbsc', 'option "cookieName" must be a cookie name (letters, digits and !#$%&\'*+.^_`|~-).');
  }
  const algorithms = given.algorithms ?? DBSC_ALGORITHMS;
  if (
    !Array.isArray(algorithms) ||
    algorithms.length === 0 ||
    new Set(algorithms).size !== algorithms.length ||
    !algorithms.every((a) => (DBSC_ALGORITHMS as readonly unknown[]).includes(a))
  ) {
    throw optionError('dbsc', 'option "algorithms" must be a non-empty list of "ES256" and "RS256", without repeats.');
  }
  const { store, challengeStore, now } = given;
  if (
    store !== undefined &&
    (typeof store !== 'object' ||
      store === null ||
      typeof (store as DbscSessionStore).get !== 'function' ||
      typeof (store as DbscSessionStore).set !== 'function')
  ) {
    throw optionError('dbsc', 'option "store" must be an object with get(req) and set(req, binding).');
  }
  const checkedChallengeStore = checkStore('dbsc', 'challengeStore', challengeStore);
  assertClock('dbsc', 'now', now);
  const clock = now ?? (() => Date.now());
  const nowSeconds = () => Math.floor(clock() / 1000);
  return {
    key: secretKey(given.secret),
    registrationPath,
    refreshPath,
    cookieName,
    cookieMaxAge: checkInteger('dbsc', 'cookieMaxAge', given.cookieMaxAge, 300, 1, 86_400, 'seconds'),
    cookieAttributes: 'Path=/; Secure; HttpOnly; SameSite=Lax',
    challengeTtl: checkInteger('dbsc', 'challengeTtl', given.challengeTtl, 300, 1, 86_400, 'seconds'),
    algorithms: algorithms as DbscAlgorithm[],
    store: store === undefined ? (expressSessionState as DbscState<Req>) : appState(store as DbscSessionStore<Req>),
    challengeStore: checkedChallengeStore ?? memoryStore({ now: clock }),
    storeTimeout: checkStoreTimeout('dbsc', 'storeTimeout', given.storeTimeout),
    origins: origins(given.origin),
    handshake: checkBoolean('dbsc', 'handshake', given.handshake, true),
    nowSeconds,
    nowMs: clock,
  };
}
