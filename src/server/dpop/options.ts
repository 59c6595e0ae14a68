/**
 * The DPoP options that `tokenSec.dpop()` and the handshake's `dpop` option share (algorithms,
 * maxAge, clockSkew, replayStore, storeTimeout, nonce, origin, url), checked once at creation, and
 * the URL a proof's `htu` must name.
 */
import type { TLSSocket } from 'node:tls';
import { DPOP_ALGORITHMS, acceptedAlgorithms, type DpopAlgorithm } from '../../protocol/dpop.js';
import { canonicalHtu } from '../../protocol/htu.js';
import { isValidHost } from '../../protocol/htu.js';
import type { RequestLike } from '../express-request.js';
import { assertClock, checkInteger, describe, optionError } from '../options.js';
import { badHost, namedOrigin, readRequestTarget, targetUrl, type RequestTargetParts } from '../request-target.js';
import { resolveNonce } from './nonce.js';
import { asAtomicStore, defaultStore } from './replay-store.js';
import { checkStore, checkStoreTimeout } from '../store.js';
import type { DpopVerifyOptions } from './verify.js';

/** The message of the creation error in production when neither `origin` nor `url` is set. */
export const originRequired = (prefix: string): string =>
  `option "${prefix}origin" (or "${prefix}url") is required when NODE_ENV is production: set "${prefix}origin" to the origin(s) clients address this app at, e.g. "https://app.example". Without it a DPoP proof's htu is checked against the request's Host header, which a client chooses: a proof made for another service that accepts the same tokens passes here when sent with that service's Host, and behind a proxy that rewrites Host every proof is refused.`;

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
 * The URL a proof's `htu` must name, normalised (canonicalHtu), or undefined when the request has
 * no absolute http(s) URL. `parts`: the request target when the caller has read it already.
 * `checkHost`, only where the URL is built from Host: throws badHost() for a Host that is not
 * `host[:port]`; the middlewares call it before anything else reads the request.
 */
export type TargetOf<Req> = ((req: Req, htu: unknown, parts?: RequestTargetParts) => string | undefined) & {
  checkHost?: (req: Req, parts?: RequestTargetParts) => void;
};

/**
 * How the URL the proof's `htu` must name is found, from the `url` and `origin` options: `url` (a
 * function of the request) wins; `origin` + the request path; else the request's own protocol and
 * Host, refused at creation when NODE_ENV is production. Returns it normalised: from `origin` or
 * Host, without a URL parse when the path is plain (request-target.ts).
 */
export function resolveUrl<Req extends RequestLike>(fn: string, given: Partial<Record<string, unknown>>, prefix = ''): TargetOf<Req> {
  const { url, origin } = given;
  if (url !== undefined && typeof url !== 'function')
    throw optionError(fn, `option "${prefix}url" must be a function (req) returning the absolute request URL.`);
  if (origin !== undefined && (Array.isArray(origin) ? origin.length === 0 : typeof origin !== 'string')) {
    throw optionError(fn, `option "${prefix}origin" must be an origin such as "https://app.example", or a non-empty array of them.`);
  }
  const origins =
    origin === undefined ? [] : (Array.isArray(origin) ? origin : [origin]).map((o: unknown) => checkOrigin(fn, `${prefix}origin`, o));
  if (url) {
    const fromUrl: TargetOf<Req> = (req) => canonicalHtu((url as (req: Req) => string)(req));
    // The app's function may read Host or, under `trust proxy`, X-Forwarded-Host (Express's req.host).
    fromUrl.checkHost = (req) => checkForwardedHost(req);
    return fromUrl;
  }
  if (origins.length === 0) {
    if (process.env.NODE_ENV === 'production') throw optionError(fn, originRequired(prefix));
    const fromHost: TargetOf<Req> = (req, _htu, parts = readRequestTarget(req)) => targetUrl(requestOrigin(req, parts), parts.path);
    fromHost.checkHost = (req, parts = readRequestTarget(req)) => {
      checkForwardedHost(req);
      requestOrigin(req, parts);
    };
    return fromHost;
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
  const replayStore =
    checkStore(
      fn,
      `${prefix}replayStore`,
      given.replayStore,
      `a store with addIfAbsent(key, value, ttlSeconds) and delete(key), e.g. memoryStore() or redisStore({ client }) (a 3.0 store with an add method is accepted too), got ${describe(given.replayStore)}`,
      asAtomicStore,
    ) ?? defaultStore();
  assertClock(fn, `${prefix}now`, given.now);
  return {
    algorithms: acceptedAlgorithms(algorithms as DpopAlgorithm[]),
    maxAge: checkInteger(fn, `${prefix}maxAge`, given.maxAge, 60, 1, 86_400, 'seconds'),
    clockSkew: checkInteger(fn, `${prefix}clockSkew`, given.clockSkew, 5, 0, 600, 'seconds'),
    replayStore,
    storeTimeout: checkStoreTimeout(fn, `${prefix}storeTimeout`, given.storeTimeout),
    nonce: resolveNonce(fn, given.nonce, `${prefix}nonce.`),
    now: given.now,
  };
}

/** Refuses a request whose Host or X-Forwarded-Host, where present, is not `host[:port]`. */
function checkForwardedHost(req: RequestLike): void {
  for (const name of ['host', 'x-forwarded-host'] as const) {
    const value = req.headers[name];
    if (value === undefined) continue;
    // X-Forwarded-Host may list one host per proxy, comma-separated; Express reads the first.
    const hosts = name === 'host' ? [String(value)] : (Array.isArray(value) ? value.join(',') : value).split(',').map((h) => h.trim());
    if (!hosts.every(isValidHost)) throw badHost();
  }
}

/**
 * The scheme and authority the client addressed: Express's protocol honours `trust proxy`; the
 * host is the Host header (X-Forwarded-Host is never read here); plain node:http uses the socket
 * and Host. An absolute-form target (`GET http://host/x`) names its own (RFC 9112 §3.3). A Host
 * that is not `host[:port]` is refused (400 ERR_TOKENSEC_BAD_HOST) before it is joined to anything.
 */
function requestOrigin(req: RequestLike, parts: RequestTargetParts): string {
  if (parts.absoluteOrigin !== undefined) return parts.absoluteOrigin;
  const protocol = req.protocol ?? ((req.socket as TLSSocket | undefined)?.encrypted ? 'https' : 'http');
  const host = req.get?.('host') ?? req.headers.host ?? '';
  // No Host at all (HTTP/1.0) leaves no URL: a proof is then refused as naming none.
  if (host !== '' && !isValidHost(host)) throw badHost();
  return `${protocol}://${host}`;
}
