/**
 * The session's DPoP key binding: a session is bound to one key, the first one its handshake
 * binds (made fresh by the client for it, claim `tsb`). By default through express-session's
 * session id in an AtomicStore, atomically across processes, the key mirrored into
 * `req.session.tokenSecJkt`; the binding's store key lives as long as the session
 * (session/state.ts: deleted when the session is destroyed or regenerated, TTL until it expires).
 * Or through the app's own hooks (`dpop.sessionKey`). `tokenSec.unbind()` deletes one.
 */
import { TokenSecError } from '../../protocol/errors.js';
import { BIND_CLAIM } from '../../protocol/dpop.js';
import { defaultBindingStore } from '../memory-store.js';
import { checkOptions, optionError, type MaybePromise } from '../options.js';
import { callStore, checkStore, checkStoreTimeout, type AtomicStore } from '../store.js';
import { followSessionStore, keepPerSession, sessionStateKey, sessionTtl } from '../session/state.js';
import type { VerifiedProof } from './verify.js';

/**
 * Where a session's DPoP key thumbprint is kept, when the app keeps it itself (say, by user id).
 * The default binds through an AtomicStore keyed by express-session's session id
 * (`dpop.bindingStore`) and mirrors the bound key into `req.session.tokenSecJkt`.
 *
 * @example
 * ```ts
 * const sessionKey = {
 *   get: (req) => sessions.get(req.sessionId)?.jkt,
 *   set: (req, jkt) => sessions.update(req.sessionId, { jkt }),
 *   // atomic across processes: resolves undefined when this call bound jkt, else the key bound before
 *   bind: (req, jkt) => bindings.addIfAbsent(`bind:${req.sessionId}`, jkt, 86_400),
 * };
 * ```
 */
export interface SessionKeyStore<Req> {
  /** The key the session is bound to, or undefined. */
  get(req: Req): MaybePromise<string | undefined>;
  /** Records the binding; used only when `bind` is missing. */
  set(req: Req, jkt: string): MaybePromise<void>;
  /**
   * Binds the session to `jkt` unless it is bound, atomically across every process: resolves
   * undefined when this call bound it, else the key bound before (unchanged). Without it, TokenSec
   * calls get() then set(), which two concurrent first handshakes of one session can both pass.
   */
  bind?(req: Req, jkt: string): MaybePromise<string | undefined>;
}

/** There is no session to bind to (no session middleware): nothing is bound. */
export const NO_SESSION = Symbol('no session');

/** A session binding as the pipeline uses it: NO_SESSION when there is nothing to bind to. */
export interface Binding<Req> {
  get(req: Req): MaybePromise<string | undefined | typeof NO_SESSION>;
  bind(req: Req, jkt: string): MaybePromise<string | undefined>;
}

/** The kind of per-session state (session/state.ts) a binding is: its store key is `tokensec:bind:<hash of the session id>`. */
const BINDING = 'bind';

interface SessionRequest {
  session?: { tokenSecJkt?: unknown; cookie?: { maxAge?: number | null } };
  sessionID?: unknown;
}

/**
 * The session a binding belongs to, or undefined when there is none. A session without an id
 * lives in its cookie (cookie-session): a recorded cookie from before the first handshake would
 * bring back an unbound session, so binding refuses it.
 */
function serverSession(req: unknown): { id: string; session: NonNullable<SessionRequest['session']> } | undefined {
  const { session, sessionID } = req as SessionRequest;
  if (typeof session !== 'object' || session === null) return undefined;
  if (typeof sessionID !== 'string' || sessionID === '') {
    throw new TokenSecError(
      'ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE',
      'TokenSec binds the DPoP key to a server-side session, but req.session has no session id: it lives in a cookie ' +
        '(cookie-session), where a recorded cookie brings back an unbound session. Use express-session with a server-side store, ' +
        'or pass dpop.sessionKey hooks that keep the binding on the server (e.g. by user id).',
      500,
    );
  }
  return { id: sessionID, session };
}

/**
 * express-session: bound through `store` by session id, for as long as the session lives, and
 * mirrored into `req.session.tokenSecJkt` (read first).
 */
export function sessionBinding<Req>(store: AtomicStore, timeout: number): Binding<Req> {
  keepPerSession(BINDING, store, timeout);
  return {
    get: (req) => {
      followSessionStore(req);
      const found = serverSession(req);
      if (!found) return NO_SESSION;
      const value = found.session.tokenSecJkt;
      return typeof value === 'string' ? value : undefined;
    },
    bind: (req, jkt) => {
      const { id, session } = serverSession(req) ?? {};
      if (!session || id === undefined) return undefined;
      return callStore(() => store.addIfAbsent(sessionStateKey(BINDING, id), jkt, sessionTtl(req)), timeout).then((earlier) => {
        session.tokenSecJkt = earlier ?? jkt;
        return earlier;
      }, bindingStoreFull);
    },
  };
}

/**
 * A full binding store told apart from a full replay store: its own code, so that operators
 * (onEvent) see which store to size.
 */
function bindingStoreFull(error: unknown): never {
  if (!(error instanceof TokenSecError) || error.code !== 'ERR_TOKENSEC_STORE_FULL') throw error;
  throw new TokenSecError(
    'ERR_TOKENSEC_BINDING_STORE_FULL',
    'TokenSec binding store is full: no new session can be bound. Size it (memoryStore({ max })) or use a shared Redis store.',
    503,
    { cause: error },
  );
}

/** The app's hooks; without `bind`, get() then set() (not atomic). Each call has the store time limit. */
export function hookBinding<Req>(hooks: SessionKeyStore<Req>, timeout: number): Binding<Req> {
  const bind =
    hooks.bind?.bind(hooks) ??
    (async (req: Req, jkt: string) => {
      const bound = await hooks.get(req);
      if (bound !== undefined) return bound;
      await hooks.set(req, jkt);
      return undefined;
    });
  return {
    get: (req) => callStore(() => hooks.get(req), timeout),
    bind: (req, jkt) => callStore(() => bind(req, jkt), timeout),
  };
}

/** The `dpop.sessionKey` option: false, undefined, or hooks with get, set and optionally bind; else its TypeError. */
export function assertSessionKey<Req>(value: unknown): asserts value is false | SessionKeyStore<Req> | undefined {
  if (value === undefined || value === false) return;
  const hooks = value as Partial<SessionKeyStore<Req>> | null;
  if (
    typeof hooks !== 'object' ||
    hooks === null ||
    typeof hooks.get !== 'function' ||
    typeof hooks.set !== 'function' ||
    !['undefined', 'function'].includes(typeof hooks.bind)
  ) {
    throw optionError(
      'handshake',
      'option "dpop.sessionKey" must be false or an object with get(req), set(req, jkt) and optionally bind(req, jkt).',
    );
  }
}

const keyMismatch = () =>
  new TokenSecError(
    'ERR_TOKENSEC_DPOP_KEY_MISMATCH',
    'TokenSec handshake made with another DPoP key than the one this session is bound to. Log in again (the server unbinds the session at logout and login).',
    403,
  );

/**
 * The session's binding, checked and made before anything is answered, with `record` (the proof
 * id's one-time use) run only for a key the session accepts: bound to another key, 403, and
 * unbound with a key not made for it (claim `tsb: true`), 409, record nothing. Bound to this key:
 * `mark` (the replay store learns the key is bound), then `record`. Unbound: `record`, then the
 * session is bound, atomically, to this key, then `mark`. Waits only for a store that does.
 */
export function checkBinding<Req>(
  req: Req,
  proof: VerifiedProof | undefined,
  binding: Binding<Req> | undefined,
  record: () => Promise<void> | undefined = () => undefined,
  mark: () => Promise<void> | undefined = () => undefined,
): Promise<void> | undefined {
  if (!binding) return record();
  const check = (bound: string | undefined | typeof NO_SESSION): Promise<void> | undefined => {
    if (bound === NO_SESSION) return record();
    if (bound !== undefined) {
      if (bound !== proof?.jkt) throw keyMismatch();
      const marked = mark();
      return marked ? marked.then(record) : record();
    }
    // Unbound, and no proof (dpop.required: false): nothing to bind.
    if (!proof) return record();
    if (proof.claims[BIND_CLAIM] !== true) {
      throw new TokenSecError(
        'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED',
        `TokenSec binds a session only to a DPoP key the client made for it (proof claim "${BIND_CLAIM}": true); this session has no key yet.`,
        409,
      );
    }
    return Promise.resolve(record())
      .then(() => binding.bind(req, proof.jkt))
      .then((earlier) => {
        if (earlier !== undefined && earlier !== proof.jkt) throw keyMismatch();
        return mark();
      });
  };
  const bound = binding.get(req);
  return bound instanceof Promise ? bound.then(check) : check(bound);
}

/**
 * Unbinds the session of this request from its DPoP key, so that its next handshake binds a
 * fresh key: deletes the binding from `store` (the handshake's `dpop.bindingStore`; default the
 * in-memory one) and from `req.session`. Logging out with `req.session.regenerate()` or
 * `req.session.destroy()` needs no unbind: destroying an express-session session deletes its
 * binding (TokenSec wraps the session store's `destroy` the first time initialize(), the
 * handshake or unbind() sees it). Call unbind() when the session itself goes on (a logout that
 * keeps the session, or a key change without a new login).
 *
 * @example
 * ```ts
 * app.post('/logout', async (req, res, next) => {
 *   try {
 *     await tokenSec.unbind(req, { store: bindings });
 *     delete req.session.userId;
 *     res.json({ ok: true });
 *   } catch (err) {
 *     next(err);
 *   }
 * });
 * ```
 */
export async function unbind(req: unknown, options: UnbindOptions = {}): Promise<void> {
  const given = checkOptions('unbind', options, ['store', 'storeTimeout']);
  // Unbinding needs only delete(key).
  const canDelete = (value: unknown) =>
    typeof (value as Partial<AtomicStore> | null)?.delete === 'function' ? (value as AtomicStore) : undefined;
  const what = 'the AtomicStore the handshake binds in (its dpop.bindingStore)';
  const store = checkStore('unbind', 'store', given.store ?? undefined, what, canDelete) ?? defaultBindingStore;
  const timeout = checkStoreTimeout('unbind', 'storeTimeout', given.storeTimeout);
  followSessionStore(req);
  const { session, sessionID } = req as SessionRequest;
  if (typeof session !== 'object' || session === null) return;
  delete session.tokenSecJkt;
  if (typeof sessionID === 'string' && sessionID !== '') await callStore(() => store.delete(sessionStateKey(BINDING, sessionID)), timeout);
}

/**
 * Options of `tokenSec.unbind()`.
 *
 * @example
 * ```ts
 * await tokenSec.unbind(req, { store: bindings, storeTimeout: 500 });
 * ```
 */
export interface UnbindOptions {
  /** The handshake's `dpop.bindingStore`. Default: the in-memory one the handshake uses by default. */
  store?: AtomicStore;
  /** Milliseconds the store may take before 503 ERR_TOKENSEC_STORE_UNAVAILABLE. Default 1000. */
  storeTimeout?: number;
}
