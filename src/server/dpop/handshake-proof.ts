/**
 * DPoP on the handshake: the proof that commits to the handshake's ephemeral key (claim `tsh`),
 * and the binding of a session to the first key that completes a handshake in it.
 */
import { TokenSecError } from '../../protocol/errors.js';
import { checkBoolean, checkOptions, optionError } from '../options.js';
import { requestUrl, resolveVerifyOptions, withChallenge, type DpopRequestLike } from './middleware.js';
import type { NonceOptions } from './nonce.js';
import type { ReplayStore } from './replay-store.js';
import type { AtomicStore } from '../store.js';
import { checkDpopProof, readProofHeader, recordProof, type DpopVerifyOptions, type VerifiedProof } from './verify.js';
import { BIND_CLAIM, type DpopAlgorithm } from '../../protocol/dpop.js';

type MaybePromise<T> = T | Promise<T>;

/**
 * Where a session's DPoP key thumbprint is kept. The default uses express-session:
 * `req.session.tokenSecJkt`.
 *
 * @example
 * ```ts
 * const sessionKey = {
 *   get: (req) => sessions.get(req.sessionId)?.jkt,
 *   set: (req, jkt) => sessions.update(req.sessionId, { jkt }),
 * };
 * ```
 */
export interface SessionKeyStore<Req> {
  get(req: Req): MaybePromise<string | undefined>;
  set(req: Req, jkt: string): MaybePromise<void>;
}

/**
 * The handshake's `dpop` option.
 *
 * @example
 * ```ts
 * tokenSec.handshake({ payload, dpop: { required: true, algorithms: ['ES256', 'EdDSA'] } });
 * ```
 */
export interface HandshakeDpopOptions<Req = DpopRequestLike> {
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
  /** Milliseconds a store call may take before the handshake gets 503 ERR_TOKENSEC_STORE_UNAVAILABLE. Default 1000. */
  storeTimeout?: number;
  /** Require server nonces (RFC 9449 §8): `true`, or nonce options. Default off. */
  nonce?: boolean | NonceOptions;
  /**
   * Binds the session to the first key that completes a handshake in it; later handshakes with
   * another key get 403 ERR_TOKENSEC_DPOP_KEY_MISMATCH. Default: express-session's `req.session`
   * (no binding where there is no session); `false` turns it off.
   */
  sessionKey?: false | SessionKeyStore<Req>;
  /** The request's absolute URL as the browser addressed it, when the default is wrong behind your proxy. */
  url?: (req: Req) => string;
  /** For tests only: the clock, in milliseconds. */
  now?: () => number;
}

export interface ResolvedHandshakeDpop<Req> {
  required: boolean;
  verify: DpopVerifyOptions;
  sessionKey: SessionKeyStore<Req> | undefined;
  url: (req: Req) => string;
}

const KNOWN = [
  'required',
  'algorithms',
  'maxAge',
  'clockSkew',
  'replayStore',
  'storeTimeout',
  'nonce',
  'sessionKey',
  'url',
  'now',
] as const;

interface SessionRequest {
  session?: { tokenSecJkt?: unknown };
}

/** express-session: the thumbprint on `req.session`; no binding without a session. */
const expressSessionKey: SessionKeyStore<unknown> = {
  get: (req) => {
    const value = (req as SessionRequest).session?.tokenSecJkt;
    return typeof value === 'string' ? value : undefined;
  },
  set: (req, jkt) => {
    const { session } = req as SessionRequest;
    if (session) session.tokenSecJkt = jkt;
  },
};

export function resolveHandshakeDpop<Req>(options: unknown): ResolvedHandshakeDpop<Req> {
  const given = checkOptions('handshake', options, KNOWN, 'dpop.') as Partial<Record<(typeof KNOWN)[number], unknown>>;
  const { sessionKey, url } = given;
  if (
    sessionKey !== undefined &&
    sessionKey !== false &&
    (typeof sessionKey !== 'object' ||
      sessionKey === null ||
      typeof (sessionKey as SessionKeyStore<Req>).get !== 'function' ||
      typeof (sessionKey as SessionKeyStore<Req>).set !== 'function')
  ) {
    throw optionError('handshake', 'option "dpop.sessionKey" must be false or an object with get(req) and set(req, jkt).');
  }
  if (url !== undefined && typeof url !== 'function')
    throw optionError('handshake', 'option "dpop.url" must be a function (req) returning the absolute request URL.');
  return {
    required: checkBoolean('handshake', 'dpop.required', given.required, true),
    verify: resolveVerifyOptions('handshake', given, 'dpop.'),
    sessionKey:
      sessionKey === false ? undefined : ((sessionKey as SessionKeyStore<Req> | undefined) ?? (expressSessionKey as SessionKeyStore<Req>)),
    url: (url as ((req: Req) => string) | undefined) ?? (requestUrl as (req: Req) => string),
  };
}

/**
 * The handshake's proof, checked against this request and committed to this handshake header;
 * undefined when none came and none is required. Its one-time use is recorded by
 * `recordHandshakeProof`, once the binding has shown the client holds the secret.
 */
export function handshakeProof<Req extends DpopRequestLike>(
  req: Req,
  header: string,
  method: string,
  dpop: ResolvedHandshakeDpop<Req>,
): VerifiedProof | undefined {
  try {
    // Inside the try: two DPoP header lines are a refusal that carries the challenge too.
    const proof = readProofHeader(req);
    if (proof === undefined && !dpop.required) return undefined;
    return checkDpopProof(proof, { method, url: dpop.url(req), handshake: header }, dpop.verify);
  } catch (error) {
    // A 401 carries its challenge (RFC 9110 §15.5.2), here as on API routes.
    throw withChallenge(error, dpop.verify);
  }
}

/** Refuses a proof used before; records this one. Run once the binding has shown the client holds the secret. */
export function recordHandshakeProof<Req>(proof: VerifiedProof | undefined, dpop: ResolvedHandshakeDpop<Req>): Promise<void> | undefined {
  if (!proof) return undefined;
  return recordProof(proof, dpop.verify).catch((error: unknown) => {
    throw withChallenge(error, dpop.verify);
  });
}

/**
 * Key integrity: a session with no key bound yet binds only a key the browser client made in the
 * run that sends the proof (claim `tsb: true`), never one read back from storage that other script
 * could have written. 409 tells the client to make a new key and send it with `tsb`.
 */
function requireNewKey(proof: VerifiedProof | undefined): void {
  if (proof && proof.claims[BIND_CLAIM] !== true) {
    throw new TokenSecError(
      'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED',
      `TokenSec handshake: this session has no DPoP key bound yet; it binds only a key the client made for it (claim "${BIND_CLAIM}").`,
      409,
    );
  }
}

/**
 * Refuses a handshake whose key is not the one the session is bound to, and one that would bind
 * a key not made for binding (`requireNewKey`). Waits only for a store that does.
 */
export function checkSessionKey<Req>(
  req: Req,
  proof: VerifiedProof | undefined,
  dpop: ResolvedHandshakeDpop<Req>,
): Promise<void> | undefined {
  if (!dpop.sessionKey) return undefined;
  // The default store binds nothing where there is no express-session.
  const binds = dpop.sessionKey !== expressSessionKey || (req as SessionRequest).session !== undefined;
  const check = (bound: string | undefined): undefined => {
    if (bound === undefined && binds) requireNewKey(proof);
    if (bound !== undefined && bound !== proof?.jkt) {
      throw new TokenSecError(
        'ERR_TOKENSEC_DPOP_KEY_MISMATCH',
        'TokenSec handshake made with another DPoP key than the one this session is bound to.',
        403,
      );
    }
    return undefined;
  };
  const bound = dpop.sessionKey.get(req);
  return bound instanceof Promise ? bound.then(check) : check(bound);
}

/** Binds the session to the key of its first successful handshake. */
export function recordSessionKey<Req>(
  req: Req,
  proof: VerifiedProof | undefined,
  dpop: ResolvedHandshakeDpop<Req>,
): Promise<void> | undefined {
  const store = dpop.sessionKey;
  if (!proof || !store) return undefined;
  return (async () => {
    if ((await store.get(req)) === undefined) await store.set(req, proof.jkt);
  })();
}
