/**
 * `tokenSec.dpop()`: protects API routes with sender-constrained tokens (RFC 9449 §7). The request
 * carries `Authorization: DPoP <token>` and a DPoP proof made with the browser's key; the token
 * (verified by the app) names that key in `cnf.jkt`. A token copied from a log is useless without
 * the key.
 */
import type { ServerResponse } from 'node:http';
import type { DpopRequestInfo, DpopRequestLike, RequestLike, TokenClaims, WithExpressRequest } from '../express-request.js';
import type { DpopAlgorithm } from '../../protocol/dpop.js';
import { checkOptions, describe, optionError, type MaybePromise, type Middleware } from '../options.js';
import { withErrorHeader } from '../error-handler.js';
import type { NonceOptions } from './nonce.js';
import type { ReplayStore } from './replay-store.js';
import { checkDpopProof, dpopError, markKeyBound, readAuthorizationHeader, readProofHeader, recordProof, withChallenge } from './verify.js';
import { resolveUrl, resolveVerifyOptions } from './options.js';
import type { AtomicStore } from '../store.js';
import { dpopChannel, emitDpopEvent, outcomeOf, requestIdOf, type DpopEvent } from '../events.js';

export type { DpopRequestInfo, DpopRequestLike, TokenClaims };

/**
 * What `verifyToken` receives unless you say otherwise: node:http's request, plus what your app
 * merged into `Express.Request` (express-session's `req.session`, passport's `req.user`).
 */
export type DefaultDpopRequest = WithExpressRequest<RequestLike>;

/**
 * Options of `tokenSec.dpop()`.
 *
 * @example
 * ```ts
 * import { jwtVerify } from 'jose';
 * app.use('/api', tokenSec.dpop({
 *   verifyToken: async (token) => (await jwtVerify(token, key, { issuer: 'https://app.example' })).payload,
 * }));
 * ```
 */
export interface DpopOptions<Req extends RequestLike = DefaultDpopRequest> {
  /** Verifies the access token (signature, expiry, audience: your rules, e.g. with jose) and returns its claims; throw to refuse. */
  verifyToken: (token: string, req: Req) => MaybePromise<TokenClaims>;
  /** Proof algorithms accepted. Default `['ES256']`; `'EdDSA'` may be added. */
  algorithms?: DpopAlgorithm[];
  /** Seconds a proof stays acceptable after its `iat`. Default 60 (pre-signed proofs are good for at most maxAge + clockSkew). */
  maxAge?: number;
  /** Seconds a proof's `iat` may lie in the future. Default 5. */
  clockSkew?: number;
  /**
   * Where proof ids are remembered: an AtomicStore (`memoryStore()`, `redisStore()`) or a 3.0
   * `{ add(key, ttl) }` store. Default: one `memoryStore()` per process, shared by every middleware
   * given none; use `redisStore()` with several processes.
   */
  replayStore?: AtomicStore | ReplayStore;
  /** Milliseconds a store call may take before the request gets 503 ERR_TOKENSEC_STORE_UNAVAILABLE. Default 1000. */
  storeTimeout?: number;
  /**
   * Server nonces (RFC 9449 §8), on by default: every answer carries `DPoP-Nonce`, and a proof
   * without a current one gets 401 `use_dpop_nonce` (the client retries once with it). Nonce
   * options to set the window or the key (default: TOKENSEC_NONCE_KEY, required in production);
   * `false` turns them off, and a proof signed ahead of time then lasts as long as the token.
   */
  nonce?: boolean | NonceOptions;
  /** `(event) => void`, called once per request with its outcome; never a token, proof or key. */
  onEvent?: (event: DpopEvent) => void;
  /**
   * The origin(s) clients address this API at, e.g. `'https://api.example'`: the proof's `htu` must
   * be this origin + the request's path (with several, the one the proof names, if listed). Set it
   * in production: the default builds the URL from the request's protocol and Host (honouring
   * Express's `trust proxy`), so behind a proxy that rewrites Host it is wrong, and a proof made for
   * another service that accepts the same tokens passes here when sent with that service's Host.
   */
  origin?: string | string[];
  /** The request's absolute URL as the client addressed it, for what `origin` cannot say (a proxy that strips a path prefix). Wins over `origin`. */
  url?: (req: Req) => string;
  /** @deprecated Still accepted, undocumented, removed in 4.0: tests freeze the clock with vitest's fake timers (test/support/clock.ts). */
  now?: () => number;
}

/** The proof id each request had recorded, so that dpop() mounted twice on one route does not refuse its own request. */
const recordedOn = new WeakMap<object, string>();

const KNOWN = [
  'verifyToken',
  'algorithms',
  'maxAge',
  'clockSkew',
  'replayStore',
  'storeTimeout',
  'nonce',
  'origin',
  'url',
  'onEvent',
  'now',
] as const;

/**
 * Protects API routes with DPoP-bound tokens: checks the proof (typ, alg, public jwk, signature,
 * htm, htu, iat, jti once, ath, nonce), the token (your `verifyToken`), and that the token's
 * `cnf.jkt` is the proof key. Refusals go to `next(err)` as 401 TokenSecErrors carrying
 * `err.headers['WWW-Authenticate']` (Express's default handler sends it; a custom handler must copy it).
 *
 * @example
 * ```ts
 * app.get('/api/me', tokenSec.dpop({ verifyToken }), (req, res) => res.json({ sub: req.tokenSec.claims.sub }));
 * ```
 */
export function dpop<Req extends DpopRequestLike = DefaultDpopRequest, Res extends ServerResponse = ServerResponse>(
  options: DpopOptions<Req>,
): Middleware<DpopRequestLike, ServerResponse> {
  const given = checkOptions('dpop', options, KNOWN) as Partial<Record<(typeof KNOWN)[number], unknown>>;
  if (typeof given.verifyToken !== 'function') {
    throw optionError(
      'dpop',
      'option "verifyToken" is required: a function (token, req) that verifies the access token (e.g. with jose) and returns its claims.',
    );
  }
  const verifyToken = given.verifyToken as DpopOptions<Req>['verifyToken'];
  const verify = resolveVerifyOptions('dpop', given);
  if (given.onEvent !== undefined && typeof given.onEvent !== 'function') {
    throw optionError('dpop', `option "onEvent" must be a function (event) => void, got ${describe(given.onEvent)}.`);
  }
  const onEvent = given.onEvent as ((event: DpopEvent) => void) | undefined;
  const urlOf = resolveUrl<Req>('dpop', given);

  async function check(req: Req, res: Res, seen: Pick<DpopEvent, 'algorithm' | 'jkt'>): Promise<void> {
    // Every answer carries the current nonce, refusals too (whichever error handler sends them): the client keeps the latest.
    if (verify.nonce) res.setHeader('DPoP-Nonce', verify.nonce.current());
    // Before anything is read: no URL is built from a Host that is not host[:port].
    urlOf.checkHost?.(req);
    const authorization = readAuthorizationHeader(req) ?? '';
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is token68 (RFC 9449 §7.1).
    const match = /^DPoP +([\w\-.~+/]+=*)$/i.exec(authorization);
    if (!match) {
      // A Bearer token where a DPoP-bound one is required, or no credentials at all.
      const error = dpopError(
        'ERR_TOKENSEC_DPOP_INVALID_TOKEN',
        'This API requires Authorization: DPoP <token> with a DPoP proof.',
        'invalid_token',
      );
      if (!authorization) delete error.dpopError;
      throw error;
    }
    const token = match[1] ?? '';
    const proof = checkDpopProof(
      readProofHeader(req),
      { method: (req.method ?? 'GET').toUpperCase(), target: (htu) => urlOf(req, htu), accessToken: token },
      verify,
    );
    seen.algorithm = proof.alg;
    seen.jkt = proof.jkt;
    let claims: TokenClaims;
    try {
      claims = await verifyToken(token, req);
    } catch (cause) {
      throw dpopError('ERR_TOKENSEC_DPOP_INVALID_TOKEN', 'The access token was refused.', 'invalid_token', cause);
    }
    if (typeof claims !== 'object' || claims === null || claims.cnf?.jkt !== proof.jkt) {
      throw dpopError('ERR_TOKENSEC_DPOP_INVALID_TOKEN', 'The access token is not bound to the DPoP proof key (cnf.jkt).', 'invalid_token');
    }
    // Only now, with a valid token bound to this key, is the proof id worth remembering. A second
    // dpop() on the same request (a router's and a route's) sees the proof it recorded: no replay.
    if (recordedOn.get(req) !== proof.claims.jti) {
      // The token names this key (cnf.jkt): the store learns it is bound, until the token expires
      // (one proof window for a token without exp), before the id takes room (docs/PROTOCOL.md).
      const exp = claims.exp;
      const now = Math.floor((verify.now ?? Date.now)() / 1000);
      await markKeyBound(proof.jkt, typeof exp === 'number' && exp > now ? exp - now : verify.maxAge + verify.clockSkew, verify);
      await recordProof(proof, verify);
      recordedOn.set(req, proof.claims.jti);
    }
    req.tokenSec = { token, claims, jkt: proof.jkt };
  }

  // Any framework's request and response will do; verifyToken sees them as the app's types.
  return function tokenSecDpop(req, res, next) {
    const started = performance.now();
    const seen: Pick<DpopEvent, 'algorithm' | 'jkt'> = {};
    const report = (outcome: Pick<DpopEvent, 'outcome' | 'status' | 'code'>) => {
      // Built only when someone listens: most apps do not, and it is per request.
      if (!onEvent && !dpopChannel.hasSubscribers) return;
      emitDpopEvent(onEvent, { ...outcome, ...seen, durationMs: performance.now() - started, requestId: requestIdOf(req) });
    };
    check(req as Req, res as Res, seen).then(
      () => {
        report({ outcome: 'accepted', status: 200 });
        next();
      },
      (error: unknown) => {
        const { outcome, status, code } = outcomeOf(error);
        report({ outcome: outcome === 'answered' ? 'failed' : outcome, status, code });
        next(withErrorHeader(withChallenge(error, verify)));
      },
    );
  };
}
