/**
 * `tokenSec.dpop()`: protects API routes with sender-constrained tokens (RFC 9449 §7). The request
 * carries `Authorization: DPoP <token>` and a DPoP proof made with the browser's key; the token
 * (verified by the app) names that key in `cnf.jkt`. A token copied from a log is useless without
 * the key.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { WithExpressRequest } from '../express-request.js';
import { DPOP_ALGORITHMS, DPOP_NONCE_HEADER, acceptedAlgorithms, type DpopAlgorithm } from '../../protocol/dpop.js';
import { TokenSecError } from '../../protocol/errors.js';
import { checkInteger, checkOptions, describe, optionError, type Middleware } from '../options.js';
import { withErrorHeader } from '../error-handler.js';
import { namedOrigin, readRequestTarget, targetUrl, type RequestTargetParts } from '../request-target.js';
import { normalizeHtu } from '../../protocol/dpop.js';
import { nonceSource, type NonceOptions } from './nonce.js';
import { asAtomicStore, defaultStore, type ReplayStore } from './replay-store.js';
import { checkDpopProof, dpopError, readProofHeader, recordProof, type DpopErrorName, type DpopVerifyOptions } from './verify.js';
import type { AtomicStore } from '../store.js';
import { dpopChannel, emitDpopEvent, outcomeOf, requestIdOf, type DpopEvent } from '../events.js';

type MaybePromise<T> = T | Promise<T>;

/**
 * The claims of a verified access token, as the app's `verifyToken` returns them; `cnf.jkt` must
 * be the proof key's thumbprint.
 *
 * @example
 * ```ts
 * const claims: TokenClaims = { sub: 'alice', exp: 1767225900, cnf: { jkt: 'oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U' } };
 * ```
 */
export type TokenClaims = Record<string, unknown> & { cnf?: { jkt?: unknown } };

/**
 * What `dpop()` puts on the request (`req.tokenSec`) for the route.
 *
 * @example
 * ```ts
 * app.get('/api/me', tokenSec.dpop({ verifyToken }), (req, res) => res.json({ sub: req.tokenSec?.claims.sub, key: req.tokenSec?.jkt }));
 * ```
 */
export interface DpopRequestInfo {
  token: string;
  /** The claims `verifyToken` returned. */
  claims: TokenClaims;
  /** The proof key's thumbprint, equal to the token's `cnf.jkt`. */
  jkt: string;
}

/**
 * The request as `dpop()` sees it: node:http's, plus Express's fields where present.
 *
 * @example
 * ```ts
 * const url = (req: DpopRequestLike) => `https://api.example${req.originalUrl ?? req.url}`;
 * app.use('/api', tokenSec.dpop({ verifyToken, url }));
 * ```
 */
export interface DpopRequestLike extends IncomingMessage {
  originalUrl?: string;
  protocol?: string;
  get?: (name: string) => string | undefined;
  tokenSec?: DpopRequestInfo;
}

/**
 * What `verifyToken` receives unless you say otherwise: node:http's request, plus what your app
 * merged into `Express.Request` (express-session's `req.session`, passport's `req.user`).
 */
export type DefaultDpopRequest = WithExpressRequest<DpopRequestLike>;

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
export interface DpopOptions<Req extends DpopRequestLike = DefaultDpopRequest> {
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
  /** Require server nonces (RFC 9449 §8): `true`, or nonce options. Default off. */
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
  /** For tests only: the clock, in milliseconds. */
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

/** process.emitWarning's code when a production start builds htu from the Host header. */
export const HOST_FALLBACK_WARNING = 'TOKENSEC_HTU_FROM_HOST';
let hostFallbackWarned = false;

/** An origin as the option may give it: http(s), no path (a trailing slash is fine), query, fragment or credentials. */
function checkOrigin(fn: string, name: string, value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (
    !url ||
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.pathname !== '/' ||
    url.search ||
    url.hash ||
    url.username ||
    url.password ||
    /[?#]/.test(String(value))
  ) {
    throw optionError(
      fn,
      `option "${name}" must be an origin such as "https://app.example" (scheme, host and port if not the default; no path), got ${typeof value === 'string' ? JSON.stringify(value) : describe(value)}.`,
    );
  }
  return url.origin;
}

/**
 * The URL a proof's `htu` must name, normalised (normalizeHtu), or undefined when the request has
 * no absolute http(s) URL. `parts`: the request target when the caller has read it already.
 */
export type TargetOf<Req> = (req: Req, htu: unknown, parts?: RequestTargetParts) => string | undefined;

/**
 * How the URL the proof's `htu` must name is found, from the `url` and `origin` options: `url` (a
 * function of the request) wins; `origin` + the request path; else the request's own protocol and
 * Host, with one warning per process when NODE_ENV is production. Returns it normalised: from
 * `origin` or Host, without a URL parse when the path is plain (request-target.ts).
 */
export function resolveUrl<Req extends DpopRequestLike>(fn: string, given: Partial<Record<string, unknown>>, prefix = ''): TargetOf<Req> {
  const { url, origin } = given;
  if (url !== undefined && typeof url !== 'function')
    throw optionError(fn, `option "${prefix}url" must be a function (req) returning the absolute request URL.`);
  if (origin !== undefined && (Array.isArray(origin) ? origin.length === 0 : typeof origin !== 'string')) {
    throw optionError(fn, `option "${prefix}origin" must be an origin such as "https://app.example", or a non-empty array of them.`);
  }
  const origins =
    origin === undefined ? [] : (Array.isArray(origin) ? origin : [origin]).map((o: unknown) => checkOrigin(fn, `${prefix}origin`, o));
  if (url) return (req) => normalizeHtu((url as (req: Req) => string)(req));
  if (origins.length === 0) {
    if (process.env.NODE_ENV === 'production' && !hostFallbackWarned) {
      hostFallbackWarned = true;
      process.emitWarning(
        `tokenSec.${fn}(): no "${prefix}origin" option, so a DPoP proof's htu is checked against the request's Host header: behind a proxy that rewrites Host, proofs are refused, and a proof used at another service that accepts the same tokens passes here when sent with its Host. Set "${prefix}origin" to the origin(s) clients address this app at.`,
        { code: HOST_FALLBACK_WARNING },
      );
    }
    return (req, _htu, parts = readRequestTarget(req)) => targetUrl(requestOrigin(req, parts), parts.path);
  }
  const [first = ''] = origins;
  // With one origin, the proof's htu need not be read to choose.
  if (origins.length === 1) return (req, _htu, parts = readRequestTarget(req)) => targetUrl(first, parts.path);
  return (req, htu, parts = readRequestTarget(req)) => targetUrl(namedOrigin(htu, origins) ?? first, parts.path);
}

/** Resolves the proof-checking options shared by `dpop()` and the handshake's `dpop` option. */
export function resolveVerifyOptions(fn: string, given: Partial<Record<string, unknown>>, prefix = ''): DpopVerifyOptions {
  const algorithms = given.algorithms ?? ['ES256'];
  if (!Array.isArray(algorithms) || algorithms.length === 0 || algorithms.some((alg) => !DPOP_ALGORITHMS.includes(alg as DpopAlgorithm))) {
    throw optionError(
      fn,
      `option "${prefix}algorithms" must be a non-empty array of ${DPOP_ALGORITHMS.map((a) => `"${a}"`).join(' and ')}.`,
    );
  }
  const replayStore = given.replayStore === undefined ? defaultStore() : asAtomicStore(given.replayStore);
  if (!replayStore) {
    throw optionError(
      fn,
      `option "${prefix}replayStore" must be a store with addIfAbsent(key, value, ttlSeconds) and delete(key), e.g. memoryStore() or redisStore({ client }) (a 3.0 store with an add method is accepted too), got ${describe(given.replayStore)}.`,
    );
  }
  const nonce = given.nonce;
  if (nonce !== undefined && typeof nonce !== 'boolean' && (typeof nonce !== 'object' || nonce === null)) {
    throw optionError(fn, `option "${prefix}nonce" must be true, false or nonce options, got ${describe(nonce)}.`);
  }
  if (given.now !== undefined && typeof given.now !== 'function')
    throw optionError(fn, `option "${prefix}now" must be a function returning milliseconds.`);
  return {
    algorithms: acceptedAlgorithms(algorithms as DpopAlgorithm[]),
    maxAge: checkInteger(fn, `${prefix}maxAge`, given.maxAge, 60, 1, 86_400, 'seconds'),
    clockSkew: checkInteger(fn, `${prefix}clockSkew`, given.clockSkew, 5, 0, 600, 'seconds'),
    replayStore,
    storeTimeout: checkInteger(fn, `${prefix}storeTimeout`, given.storeTimeout, 1000, 1, 60_000, 'milliseconds'),
    nonce: nonce ? nonceSource(nonce === true ? {} : (nonce as NonceOptions), fn, `${prefix}nonce.`) : undefined,
    now: given.now as (() => number) | undefined,
  };
}

/**
 * The URL the client addressed: Express's protocol and host honour `trust proxy`; plain node:http
 * uses the socket and Host. An absolute-form target (`GET http://host/x`) is that URL itself
 * (RFC 9112 §3.3). The path is the one the handshake binds (`requestPath`).
 */
export function requestUrl(req: DpopRequestLike): string {
  const parts = readRequestTarget(req);
  return `${requestOrigin(req, parts)}${parts.path}`;
}

/** The scheme and authority of requestUrl. */
function requestOrigin(req: DpopRequestLike, parts: RequestTargetParts): string {
  if (parts.absoluteOrigin !== undefined) return parts.absoluteOrigin;
  const protocol = req.protocol ?? ((req.socket as TLSSocket).encrypted ? 'https' : 'http');
  const host = req.get?.('host') ?? req.headers.host ?? '';
  return `${protocol}://${host}`;
}

/** `WWW-Authenticate: DPoP ...` for a refusal (RFC 9449 §7.1); no error attribute when no credentials came (RFC 6750 §3.1). */
export function wwwAuthenticate(algorithms: readonly string[], error?: DpopErrorName, description?: string): string {
  const parts = [`algs="${algorithms.join(' ')}"`];
  if (error) parts.unshift(`error="${error}"`);
  if (error && description) parts.splice(1, 0, `error_description="${description.replace(/["\\]/g, '')}"`);
  return `DPoP ${parts.join(', ')}`;
}

/** Puts RFC 9449's challenge (and a fresh nonce when one is asked for) on a 401, in `err.headers`. */
export function withChallenge(error: unknown, verify: DpopVerifyOptions): unknown {
  if (!(error instanceof TokenSecError) || error.status !== 401) return error;
  const name = (error as { dpopError?: DpopErrorName }).dpopError;
  const headers: Record<string, string> = { 'WWW-Authenticate': wwwAuthenticate(verify.algorithms, name, error.message) };
  if (name === 'use_dpop_nonce' && verify.nonce) headers['DPoP-Nonce'] = verify.nonce.current();
  return Object.assign(error, { headers: { ...error.headers, ...headers } });
}

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
    const authorization = req.headers.authorization ?? '';
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is token68 (RFC 9449 §7.1).
    const match = /^DPoP +([\w\-.~+/]+=*)$/i.exec(authorization);
    if (!match) {
      // A Bearer token where a DPoP-bound one is required, or no credentials at all.
      const error = dpopError(
        'ERR_TOKENSEC_DPOP_INVALID_TOKEN',
        'This API requires Authorization: DPoP <token> with a DPoP proof.',
        'invalid_token',
      );
      if (!authorization) delete (error as { dpopError?: unknown }).dpopError;
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
      throw Object.assign(dpopError('ERR_TOKENSEC_DPOP_INVALID_TOKEN', 'The access token was refused.', 'invalid_token'), { cause });
    }
    if (typeof claims !== 'object' || claims === null || claims.cnf?.jkt !== proof.jkt) {
      throw dpopError('ERR_TOKENSEC_DPOP_INVALID_TOKEN', 'The access token is not bound to the DPoP proof key (cnf.jkt).', 'invalid_token');
    }
    // Only now, with a valid token bound to this key, is the proof id worth remembering. A second
    // dpop() on the same request (a router's and a route's) sees the proof it recorded: no replay.
    if (recordedOn.get(req) !== proof.claims.jti) {
      await recordProof(proof, verify);
      recordedOn.set(req, proof.claims.jti);
    }
    req.tokenSec = { token, claims, jkt: proof.jkt };
    if (verify.nonce) res.setHeader('DPoP-Nonce', verify.nonce.current());
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

export { DPOP_NONCE_HEADER };
