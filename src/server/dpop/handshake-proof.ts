/**
 * DPoP on the handshake: the proof that commits to the handshake's ephemeral key (claim `tsh`),
 * and the handshake's `dpop` options; the binding of a session to one key, made fresh by the
 * client for it (claim `tsb`), is in session-binding.ts.
 */
import type { DpopAlgorithm } from '../../protocol/dpop.js';
import { defaultBindingStore } from '../memory-store.js';
import { checkBoolean, checkOptions, optionError } from '../options.js';
import { checkStore, DEFAULT_STORE_TIMEOUT, type AtomicStore } from '../store.js';
import type { RequestLike } from '../express-request.js';
import { resolveUrl, resolveVerifyOptions, type TargetOf } from './options.js';
import type { NonceOptions } from './nonce.js';
import type { RequestTargetParts } from '../request-target.js';
import type { ReplayStore } from './replay-store.js';
import {
  badSignature,
  checkProofClaims,
  checkProofSignature,
  markKeyBound,
  readProofHeader,
  recordProof,
  splitProof,
  withChallenge,
  type DpopVerifyOptions,
  type SplitProof,
  type VerifiedProof,
} from './verify.js';
import { sessionTtl } from '../session/state.js';
import { assertSessionKey, checkBinding, hookBinding, sessionBinding, type Binding, type SessionKeyStore } from './session-binding.js';

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

/**
 * The session's binding (session-binding.ts), checked and made before anything is answered, and `record` (the proof
 * id's one-time use) run only for a key the session accepts: bound to another key, 403, and
 * unbound with a key not made for it, 409, record nothing. Bound to this key: the replay store
 * learns the key is bound (markBound), then `record`. Unbound: `record`, then the session is
 * bound, atomically, to this key made fresh for it (claim `tsb: true`), then marked. Waits only
 * for a store that does.
 */
export function checkSessionKey<Req>(
  req: Req,
  proof: VerifiedProof | undefined,
  dpop: ResolvedHandshakeDpop<Req>,
  record: () => Promise<void> | undefined = () => undefined,
): Promise<void> | undefined {
  const mark = () => proof && markKeyBound(proof.jkt, sessionTtl(req), dpop.verify);
  return checkBinding(req, proof, dpop.binding, record, mark);
}
