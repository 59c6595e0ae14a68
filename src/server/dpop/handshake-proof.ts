/**
 * DPoP on the handshake: the proof that commits to the handshake's ephemeral key (claim `tsh`),
 * and the binding of a session to one key, made fresh by the client for it (claim `tsb`).
 */
import { createHash } from 'node:crypto';
import { TokenSecError } from '../../protocol/errors.js';
import { BIND_CLAIM, type DpopAlgorithm } from '../../protocol/dpop.js';
import { defaultBindingStore } from '../memory-store.js';
import { checkBoolean, checkOptions, optionError, type MaybePromise } from '../options.js';
import { callStore, checkStore, checkStoreTimeout, DEFAULT_STORE_TIMEOUT, type AtomicStore } from '../store.js';
import type { RequestLike } from '../express-request.js';
import { resolveUrl, resolveVerifyOptions, type TargetOf } from './options.js';
import type { NonceOptions } from './nonce.js';
import type { RequestTargetParts } from '../request-target.js';
import type { ReplayStore } from './replay-store.js';
import {
  badSignature,
  checkProofClaims,
  checkProofSignature,
  readProofHeader,
  recordProof,
  splitProof,
  withChallenge,
  type DpopVerifyOptions,
  type SplitProof,
  type VerifiedProof,
} from './verify.js';

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

/**
 * The handshake's `dpop` option.
 *
 * @example
 * ```ts
 * tokenSec.handshake({ payload, dpop: { required: true, algorithms: ['ES256', 'EdDSA'], origin: 'https://app.example' } });
 * ```
 */
export interface HandshakeDpopOptions<Req = RequestLike> {
  /** Refuse handshakes without a proof. Default true; false accepts them (jkt undefined) while you migrate clients. */
  required?: boolean;
  /** Default `['ES256']`. */
  algorithms?: DpopAlgorithm[];
  /** Seconds a proof stays acceptable. Default 60. */
  maxAge?: number;
  /** Seconds of clock skew allowed. Default 5. */
  clockSkew?: number;
  /** Where proof ids are remembered. Default: the process's one memoryStore(); redisStore() across processes. */
  replayStore?: AtomicStore | ReplayStore;
  /**
   * Server nonces (RFC 9449 §8) on the handshake's proof, on by default with the nonce options of
   * `dpop()` (the same default key, so one nonce serves both): every answer carries `DPoP-Nonce`,
   * and a proof without a current one gets 401 `use_dpop_nonce` (the client retries once with
   * it). `false` turns them off.
   */
  nonce?: boolean | NonceOptions;
  /**
   * Binds the session to one key: its first handshake binds the key the client made fresh for it
   * (proof claim `tsb: true`); a handshake of an unbound session with another key gets 409
   * ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED, one with a key other than the bound one 403
   * ERR_TOKENSEC_DPOP_KEY_MISMATCH. Default: express-session's session, bound atomically through
   * `bindingStore` (no binding where there is no session; 500 ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE
   * for a session without an id, such as cookie-session's). Your own hooks, or `false` for none.
   */
  sessionKey?: false | SessionKeyStore<Req>;
  /**
   * Where the default `sessionKey` binds, atomically across the processes that share it. Default:
   * one process's memory. Several processes: a Redis AtomicStore (`SET key value NX EX ttl GET`).
   * Pass the same store to `tokenSec.unbind()`.
   */
  bindingStore?: AtomicStore;
  /** Milliseconds a store (binding, hooks) may take before the handshake fails with 503 ERR_TOKENSEC_STORE_UNAVAILABLE. Default 1000. */
  storeTimeout?: number;
  /**
   * The origin(s) this app is served at, e.g. `'https://app.example'`: the proof's `htu` must be
   * the origin + this request's path. With several, the one the proof names must be in the list.
   * Default: built from the request (protocol and Host, honouring Express's `trust proxy`), which
   * lets a proof made for another service that shares the token issuer pass here when sent with its Host.
   */
  origin?: string | string[];
  /** The request's absolute URL as the browser addressed it. Wins over `origin` when both are given. */
  url?: (req: Req) => string;
  /** @deprecated Still accepted, undocumented, removed in 4.0: tests freeze the clock with vitest's fake timers (test/support/clock.ts). */
  now?: () => number;
}

/** A session binding as the pipeline uses it: NO_SESSION when there is nothing to bind to. */
interface Binding<Req> {
  get(req: Req): MaybePromise<string | undefined | typeof NO_SESSION>;
  bind(req: Req, jkt: string): MaybePromise<string | undefined>;
}

export interface ResolvedHandshakeDpop<Req> {
  required: boolean;
  verify: DpopVerifyOptions;
  binding: Binding<Req> | undefined;
  /** The URL the proof's htu must name, normalised. */
  url: TargetOf<Req>;
}

const KNOWN = [
  'required',
  'algorithms',
  'maxAge',
  'clockSkew',
  'replayStore',
  'nonce',
  'sessionKey',
  'bindingStore',
  'storeTimeout',
  'origin',
  'url',
  'now',
] as const;

const NO_SESSION = Symbol('no session');
/** A session without a fixed end lives as long as express-session's stores keep it by default: one day. */
const DEFAULT_BINDING_TTL = 86_400;

interface SessionRequest {
  session?: { tokenSecJkt?: unknown; cookie?: { maxAge?: number | null } };
  sessionID?: unknown;
}

/** The store key of a session's binding: a hash, so the store never holds a session id. */
const bindingKey = (sessionId: string) => `tokensec:bind:${createHash('sha256').update(sessionId).digest('base64url')}`;

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

/** express-session: bound through `store` by session id, mirrored into `req.session.tokenSecJkt` (read first). */
function sessionBinding<Req>(store: AtomicStore, timeout: number): Binding<Req> {
  return {
    get: (req) => {
      const found = serverSession(req);
      if (!found) return NO_SESSION;
      const value = found.session.tokenSecJkt;
      return typeof value === 'string' ? value : undefined;
    },
    bind: (req, jkt) => {
      const { id, session } = serverSession(req) ?? {};
      if (!session || id === undefined) return undefined;
      const maxAge = session.cookie?.maxAge;
      const ttl = typeof maxAge === 'number' && maxAge > 0 ? Math.ceil(maxAge / 1000) : DEFAULT_BINDING_TTL;
      return callStore(() => store.addIfAbsent(bindingKey(id), jkt, ttl), timeout).then((earlier) => {
        session.tokenSecJkt = earlier ?? jkt;
        return earlier;
      });
    },
  };
}

/** The app's hooks; without `bind`, get() then set() (not atomic). Each call has the store time limit. */
function hookBinding<Req>(hooks: SessionKeyStore<Req>, timeout: number): Binding<Req> {
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
function assertSessionKey<Req>(value: unknown): asserts value is false | SessionKeyStore<Req> | undefined {
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

export function resolveHandshakeDpop<Req>(options: unknown): ResolvedHandshakeDpop<Req> {
  const given = checkOptions('handshake', options, KNOWN, 'dpop.') as Partial<Record<(typeof KNOWN)[number], unknown>>;
  const { sessionKey, bindingStore } = given;
  assertSessionKey<Req>(sessionKey);
  const store = checkStore('handshake', 'dpop.bindingStore', bindingStore);
  if (bindingStore !== undefined && sessionKey !== undefined) {
    throw optionError(
      'handshake',
      'options "dpop.bindingStore" and "dpop.sessionKey" do not go together: bindingStore is where the default sessionKey binds.',
    );
  }
  const required = checkBoolean('handshake', 'dpop.required', given.required, true);
  const verify = resolveVerifyOptions('handshake', given, 'dpop.');
  // dpop.storeTimeout, checked once (with the replay store's options): the binding's limit too.
  const timeout = verify.storeTimeout ?? DEFAULT_STORE_TIMEOUT;
  return {
    required,
    verify,
    binding:
      sessionKey === false
        ? undefined
        : sessionKey === undefined
          ? sessionBinding<Req>(store ?? defaultBindingStore, timeout)
          : hookBinding(sessionKey, timeout),
    url: resolveUrl('handshake', given, 'dpop.') as TargetOf<Req>,
  };
}

/**
 * The handshake's proof, checked against this request and committed to this handshake header;
 * undefined when none came and none is required. Its one-time use is recorded by
 * `recordHandshakeProof`, once the binding has shown the client holds the secret.
 */
export function handshakeProof<Req extends RequestLike>(
  req: Req,
  header: string,
  method: string,
  dpop: ResolvedHandshakeDpop<Req>,
  parts?: RequestTargetParts,
): VerifiedProof | undefined {
  const split = splitHandshakeProof(req, dpop);
  if (!split) return undefined;
  try {
    checkProofSignature(split.header, split.signingInput, split.encodedSignature);
  } catch (error) {
    throw withChallenge(error, dpop.verify);
  }
  return handshakeProofClaims(req, split, header, method, dpop, parts);
}

/**
 * handshakeProof's first part: the request's proof, split, its header accepted; undefined when
 * none came and none is required. With `workers`, the signature is then checked on a worker
 * (handshake.ts) before handshakeProofClaims.
 */
export function splitHandshakeProof<Req extends RequestLike>(req: Req, dpop: ResolvedHandshakeDpop<Req>): SplitProof | undefined {
  try {
    // Inside the try: two DPoP header lines are a refusal that carries the challenge too.
    const proof = readProofHeader(req);
    if (proof === undefined && !dpop.required) return undefined;
    return splitProof(proof, dpop.verify);
  } catch (error) {
    // A 401 carries its challenge (RFC 9110 §15.5.2), here as on API routes.
    throw withChallenge(error, dpop.verify);
  }
}

/** handshakeProof's last part, once the signature verified: the claims, against this request and handshake header. */
export function handshakeProofClaims<Req extends RequestLike>(
  req: Req,
  split: SplitProof,
  header: string,
  method: string,
  dpop: ResolvedHandshakeDpop<Req>,
  parts?: RequestTargetParts,
): VerifiedProof {
  try {
    return checkProofClaims(split, { method, target: (htu) => dpop.url(req, htu, parts), handshake: header }, dpop.verify);
  } catch (error) {
    throw withChallenge(error, dpop.verify);
  }
}

/** A signature a worker found bad: the refusal, with its challenge, that handshakeProof gives. */
export const badProofSignature = <Req>(dpop: ResolvedHandshakeDpop<Req>): unknown => withChallenge(badSignature(), dpop.verify);

/** Refuses a proof used before; records this one. Run once the binding has shown the client holds the secret. */
export function recordHandshakeProof<Req>(proof: VerifiedProof | undefined, dpop: ResolvedHandshakeDpop<Req>): Promise<void> | undefined {
  if (!proof) return undefined;
  return recordProof(proof, dpop.verify).catch((error: unknown) => {
    throw withChallenge(error, dpop.verify);
  });
}

const keyMismatch = () =>
  new TokenSecError(
    'ERR_TOKENSEC_DPOP_KEY_MISMATCH',
    'TokenSec handshake made with another DPoP key than the one this session is bound to. Log in again (the server unbinds the session at logout and login).',
    403,
  );

/**
 * The session's binding, checked and made before anything is answered: bound to this key, on;
 * bound to another, 403; unbound, bound now, atomically, to a key the client made fresh for it
 * (claim `tsb: true`), else 409 so the client makes one. Waits only for a store that does.
 */
export function checkSessionKey<Req>(
  req: Req,
  proof: VerifiedProof | undefined,
  dpop: ResolvedHandshakeDpop<Req>,
): Promise<void> | undefined {
  const binding = dpop.binding;
  if (!binding) return undefined;
  const check = (bound: string | undefined | typeof NO_SESSION): Promise<void> | undefined => {
    if (bound === NO_SESSION) return undefined;
    if (bound !== undefined) {
      if (bound !== proof?.jkt) throw keyMismatch();
      return undefined;
    }
    // Unbound, and no proof (dpop.required: false): nothing to bind.
    if (!proof) return undefined;
    if (proof.claims[BIND_CLAIM] !== true) {
      throw new TokenSecError(
        'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED',
        `TokenSec binds a session only to a DPoP key the client made for it (proof claim "${BIND_CLAIM}": true); this session has no key yet.`,
        409,
      );
    }
    return Promise.resolve(binding.bind(req, proof.jkt)).then((earlier) => {
      if (earlier !== undefined && earlier !== proof.jkt) throw keyMismatch();
    });
  };
  const bound = binding.get(req);
  return bound instanceof Promise ? bound.then(check) : check(bound);
}

/**
 * Unbinds the session of this request from its DPoP key: at logout (and login), so that the next
 * handshake binds a fresh key. Deletes the binding from `store` (the handshake's
 * `dpop.bindingStore`; default the in-memory one) and from `req.session`. Regenerating or
 * destroying the session (express-session) unbinds it too: the binding belongs to the session id.
 *
 * @example
 * ```ts
 * app.post('/logout', csrfSynchronisedProtection, async (req, res) => {
 *   await tokenSec.unbind(req, { store: bindings });
 *   req.session.destroy(() => res.json({ ok: true }));
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
  const { session, sessionID } = req as SessionRequest;
  if (typeof session !== 'object' || session === null) return;
  delete session.tokenSecJkt;
  if (typeof sessionID === 'string' && sessionID !== '') await callStore(() => store.delete(bindingKey(sessionID)), timeout);
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
