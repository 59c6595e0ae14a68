/**
 * Per-session keys that die with the session.
 *
 * TokenSec keeps some state per express-session session in an AtomicStore (the DPoP binding;
 * DBSC keeps its own), under a key made from the session id. This module makes those keys live
 * exactly as long as their session:
 *
 * - `sessionStateKey(kind, sessionId)`: the store key of one kind of state, `tokensec:<kind>:<hash>`
 *   (a SHA-256 of the session id: a store never holds a session id).
 * - `sessionTtl(req)`: seconds the request's session has left (until `cookie.expires`, else the
 *   session store's own `ttl` as connect-redis has it, else 86,400): a key's TTL, so that a key of
 *   a session that simply expires goes with it.
 * - `keepPerSession(kind, store, timeoutMs)`: declares that `store` holds `kind` keys; from then
 *   on, a destroyed session's `kind` key is deleted from `store`. Call it when the middleware that
 *   writes such keys is created, so that every process deletes them, also one that never wrote one.
 * - `followSessionStore(req)`: the first time TokenSec sees a session store (`req.sessionStore`),
 *   wraps its `destroy(sid, cb)` once, so that `req.session.destroy()`, `req.session.regenerate()`
 *   (express-session's `Store.prototype.regenerate` calls `destroy`) and a store's own `destroy` of
 *   an expired session delete every declared key of that session, then call back. initialize(),
 *   the handshake, dbsc() and unbind() call it on each request (a WeakSet lookup).
 * - `forgetSession(sessionId)`: deletes those keys now (what the wrapped `destroy` runs).
 *
 * A deletion that fails or does not answer within its store's timeout does not fail the
 * session's destroy (the session is gone either way; the key then ends with its TTL): it raises
 * one process warning, code `TOKENSEC_SESSION_STATE_NOT_DELETED`.
 */
import { createHash } from 'node:crypto';
import { callStore, type AtomicStore } from '../store.js';
import { warnOnce } from '../warn-once.js';

/** The TTL of a session's keys when neither the session cookie nor the session store says: express-session stores keep such sessions a day. */
export const DEFAULT_SESSION_TTL = 86_400;

/** process.emitWarning's code when a destroyed session's key could not be deleted. */
export const STATE_NOT_DELETED_WARNING = 'TOKENSEC_SESSION_STATE_NOT_DELETED';

/** The store key of a session's `kind` state: a hash, so the store never holds a session id. */
export const sessionStateKey = (kind: string, sessionId: string): string =>
  `tokensec:${kind}:${createHash('sha256').update(sessionId).digest('base64url')}`;

interface SessionRequestLike {
  session?: { cookie?: { maxAge?: number | null } } | null;
  sessionStore?: { ttl?: unknown; destroy?: unknown } | null;
}

/** Seconds the request's session has left: cookie expiry, else the session store's `ttl`, else one day. */
export function sessionTtl(req: unknown): number {
  const { session, sessionStore } = req as SessionRequestLike;
  // express-session's cookie.maxAge is what is left until cookie.expires, in milliseconds.
  const maxAge = session?.cookie?.maxAge;
  if (typeof maxAge === 'number' && maxAge > 0) return Math.ceil(maxAge / 1000);
  const ttl = sessionStore?.ttl;
  if (typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl)) return Math.ceil(ttl);
  return DEFAULT_SESSION_TTL;
}

/** Each store that holds per-session keys, with the kinds it holds and their time limits. */
const kindsOf = new WeakMap<AtomicStore, Map<string, number>>();
/** The same stores, weakly: a store no middleware uses any more is not kept alive by this list. */
const stores = new Set<WeakRef<AtomicStore>>();

/** Declares that `store` holds `kind` keys: a destroyed session's key of that kind is deleted from it. */
export function keepPerSession(kind: string, store: AtomicStore, timeoutMs: number): void {
  let kinds = kindsOf.get(store);
  if (!kinds) {
    kindsOf.set(store, (kinds = new Map()));
    stores.add(new WeakRef(store));
  }
  kinds.set(kind, Math.max(kinds.get(kind) ?? 0, timeoutMs));
}

/** Deletes every declared key of the session; resolves once each deletion settled (or timed out), never rejects. */
export async function forgetSession(sessionId: string): Promise<void> {
  const deletions: Promise<void>[] = [];
  for (const ref of stores) {
    const store = ref.deref();
    if (!store) {
      stores.delete(ref);
      continue;
    }
    for (const [kind, timeout] of kindsOf.get(store) ?? []) {
      deletions.push(callStore(() => store.delete(sessionStateKey(kind, sessionId)), timeout));
    }
  }
  const results = await Promise.allSettled(deletions);
  if (results.some((r) => r.status === 'rejected')) {
    warnOnce(
      STATE_NOT_DELETED_WARNING,
      'TokenSec could not delete the state of a destroyed session (its binding store failed or did not answer): the key ends with its TTL, and until then takes room in the store. Check the store (Redis) the handshake binds in.',
    );
  }
}

type Destroy = (this: unknown, sid: unknown, callback?: (err?: unknown) => void) => unknown;
const followed = new WeakSet<object>();

/**
 * Makes the request's session store delete TokenSec's keys of a session it destroys: wraps its
 * `destroy` once per store. A request without a session store is left alone.
 */
export function followSessionStore(req: unknown): void {
  const store = (req as SessionRequestLike).sessionStore;
  if (typeof store !== 'object' || store === null || followed.has(store)) return;
  followed.add(store);
  const destroy = store.destroy;
  if (typeof destroy !== 'function') return;
  const original = destroy as Destroy;
  store.destroy = function destroyWithTokenSecState(this: unknown, sid: unknown, callback?: (err?: unknown) => void) {
    const forgotten = typeof sid === 'string' && sid !== '' ? forgetSession(sid) : Promise.resolve();
    // The session store's own answer is the caller's; TokenSec's deletions only delay it (bounded by their timeouts).
    return original.call(this, sid, (err?: unknown) => {
      void forgotten.then(() => callback?.(err));
    });
  } satisfies Destroy;
}
