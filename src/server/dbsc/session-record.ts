/**
 * The default DBSC store: express-session. The login writes the pending registration into the
 * session (its own save carries it). The registered key is also kept outside the session object: a
 * record of its own in the app's session store (`req.sessionStore`: memory, connect-redis, any) under
 * a hash of the session id. Another request of the session that loaded it before the registration
 * and saves it after (Chromium registers 30–120 ms after login, while the page's next requests run)
 * writes back a session without the key; the record is written only by TokenSec, so it survives,
 * and the next read puts the key back into the session. The record lives where the session lives
 * (one process or all of them, across restarts with a persistent store) and dies with it: it takes
 * the session's cookie (every refresh moves its expiry with the session's), and the store's
 * `destroy` of the session (destroy, regenerate) destroys it too.
 */
import { TokenSecError } from '../../protocol/errors.js';
import { sessionStateKey } from '../session/state.js';
import type { MaybePromise } from '../options.js';
import type { DbscAlgorithm, DbscJwk } from './verify.js';

/**
 * What TokenSec keeps about a login's DBSC session, in the app's session: the registration
 * asked for at login (`pending`), then the browser's public key (`id`, `alg`, `jwk`, `jkt`).
 */
export interface DbscBinding {
  /** Set by requestRegistration(): the challenge the registration must sign, and its authorization value. */
  pending?:
    | {
        /** The challenge the registration proof must carry as its `jti`. */
        challenge: string;
        /** The value the proof must echo in its `authorization` claim, when the login gave one. */
        authorization?: string;
      }
    | undefined;
  /** The DBSC session identifier (`Sec-Secure-Session-Id`), set at registration. */
  id?: string;
  /** The registered key's algorithm. */
  alg?: DbscAlgorithm;
  /** The browser's public key, registered once; refreshes must be signed with it. */
  jwk?: DbscJwk;
  /** RFC 7638 thumbprint of `jwk`. */
  jkt?: string;
}

/** The part of express-session's Store that the record needs (callback style, as express-session's stores have it). */
interface SessionStoreLike {
  get(sid: string, callback: (error: unknown, session?: unknown) => void): void;
  set(sid: string, session: unknown, callback?: (error?: unknown) => void): void;
  destroy?(sid: string, callback?: (error?: unknown) => void): void;
}

interface ExpressSessionRequest {
  session?: { tokenSecDbsc?: DbscBinding; cookie?: unknown; touch?: unknown };
  sessionID?: unknown;
  sessionStore?: Partial<SessionStoreLike>;
}

/** A registered binding: a DBSC session id and a key. */
export type RegisteredBinding = Required<Pick<DbscBinding, 'id' | 'alg' | 'jwk' | 'jkt'>>;

export const isRegistered = (binding: DbscBinding | undefined): binding is RegisteredBinding & DbscBinding =>
  typeof binding?.id === 'string' && binding.jwk !== undefined && binding.alg !== undefined && typeof binding.jkt === 'string';

/**
 * What the DBSC operations need from wherever bindings live: the app's `store` option (get/set)
 * or, by default, express-session's session plus the record beside it.
 */
export interface DbscState<Req> {
  get(req: Req): MaybePromise<DbscBinding | undefined>;
  /** The login asks for a registration. */
  request(req: Req, pending: NonNullable<DbscBinding['pending']>): MaybePromise<void>;
  /** The registration verified (its challenge consumed: at most one call per login). */
  register(req: Req, binding: RegisteredBinding): MaybePromise<void>;
  /** A refresh succeeded: the binding stays as long as the session does. */
  refreshed(req: Req, binding: RegisteredBinding): MaybePromise<void>;
}

/** The session-store id of a session's DBSC record: session/state.ts's key of kind `dbsc` (a hash, never the session id). */
export const recordId = (sessionId: string) => sessionStateKey('dbsc', sessionId);
const RECORD_PREFIX = recordId('').slice(0, recordId('').lastIndexOf(':') + 1);

type Destroy = (this: unknown, sid: unknown, callback?: (error?: unknown) => void) => unknown;
const followed = new WeakSet<object>();

/**
 * Makes the request's session store destroy a session's DBSC record with the session: wraps its
 * `destroy` once per store, which `req.session.destroy()` and `req.session.regenerate()` call
 * (as session/state.ts does for the AtomicStore keys). A session that expires takes its record
 * along by the record's own expiry, the session's.
 */
export function followSessionStoreRecords(req: unknown): void {
  const store = (req as ExpressSessionRequest).sessionStore as { destroy?: unknown } | undefined;
  if (typeof store !== 'object' || store === null || followed.has(store)) return;
  followed.add(store);
  if (typeof store.destroy !== 'function') return;
  const original = store.destroy as Destroy;
  store.destroy = function destroyWithDbscRecord(this: unknown, sid: unknown, callback?: (error?: unknown) => void) {
    if (typeof sid !== 'string' || sid === '' || sid.startsWith(RECORD_PREFIX)) return original.call(this, sid, callback);
    // The record first (its failure does not keep the session alive: it then ends with its expiry), then the session.
    return original.call(this, recordId(sid), () => original.call(this, sid, callback));
  } satisfies Destroy;
}

const notServerSide = () =>
  new TokenSecError(
    'ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE',
    'tokenSec.dbsc() keeps the browser key beside the session in its server-side store: mount express-session (any store) before it, ' +
      'or pass a "store" option with get(req) and set(req, binding).',
    500,
  );

/** Calls a callback-style store method as a promise. */
function call<T>(run: (callback: (error: unknown, value?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value))));
}

/** The session, its id and its store, when express-session ran: the record needs all three. */
function serverSession(req: unknown): { id: string; session: NonNullable<ExpressSessionRequest['session']>; store: SessionStoreLike } {
  const { session, sessionID, sessionStore } = req as ExpressSessionRequest;
  if (
    typeof session !== 'object' ||
    session === null ||
    typeof sessionID !== 'string' ||
    sessionID === '' ||
    typeof sessionStore?.get !== 'function' ||
    typeof sessionStore.set !== 'function'
  ) {
    throw notServerSide();
  }
  return { id: sessionID, session, store: sessionStore as SessionStoreLike };
}

/**
 * The record as the session store keeps it: the binding, and the session's cookie, whose expiry
 * is reset first to what express-session gives the session at the end of this request (touch).
 */
function record(session: { cookie?: unknown; touch?: unknown }, binding: RegisteredBinding) {
  if (typeof session.touch === 'function') session.touch();
  return { cookie: session.cookie, tokenSecDbsc: binding };
}

export const expressSessionState: DbscState<unknown> = {
  async get(req) {
    const { session } = req as ExpressSessionRequest;
    if (typeof session !== 'object' || session === null) return undefined;
    const own = session.tokenSecDbsc;
    // Registered in the session, or never asked to register (no login of this session called requestRegistration).
    if (isRegistered(own) || own?.pending === undefined) return own;
    const { id, store } = serverSession(req);
    const kept = ((await call<unknown>((done) => store.get(recordId(id), done))) as { tokenSecDbsc?: DbscBinding } | undefined)
      ?.tokenSecDbsc;
    if (!isRegistered(kept)) return own;
    // Put back into the session what a concurrent save erased: saved with this request's session.
    session.tokenSecDbsc = kept;
    return kept;
  },
  request(req, pending) {
    serverSession(req).session.tokenSecDbsc = { pending };
  },
  async register(req, binding) {
    const { id, session, store } = serverSession(req);
    await call((done) => store.set(recordId(id), record(session, binding), done));
    session.tokenSecDbsc = binding;
  },
  async refreshed(req, binding) {
    // Written again (not touched): the session's expiry moves on, and a record the store lost comes back.
    const { id, session, store } = serverSession(req);
    await call((done) => store.set(recordId(id), record(session, binding), done));
  },
};
