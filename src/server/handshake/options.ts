/**
 * The handshake middleware's options: their public type, and their checking and resolution into
 * one typed object when the middleware is created, so the per-request pipeline never re-checks or
 * casts them.
 */
import type { ServerResponse } from 'node:http';
import { LONE_SURROGATE } from '../../protocol/context.js';
import {
  CSRF_HEADER,
  DEFAULT_HEADER,
  DEFAULT_HEADER_LIMIT,
  HEADER_NAME,
  MAX_PAYLOAD_BYTES,
  MAX_RESPONSE_LENGTH,
} from '../../protocol/wire.js';
import { resolveHandshakeDpop, type HandshakeDpopOptions, type ResolvedHandshakeDpop } from '../dpop/handshake-proof.js';
import { createCryptoPool, type CryptoPool } from '../crypto/pool.js';
import type { HandshakeEvent } from '../events.js';
import type { HandshakeRequestLike, RequestLike, WithExpressRequest } from '../express-request.js';
import { checkBoolean, checkInteger, checkOptions, describe, optionError, type MaybePromise } from '../options.js';
import { secretProblem } from './secret.js';

export type { HandshakeRequestLike };

/**
 * What the secret and payload functions receive unless you say otherwise: node:http's request,
 * plus what your app merged into `Express.Request` (express-session's `req.session`, passport's
 * `req.user`). Annotate the callback's `req` (say, as Express's `Request`) to get that type instead.
 */
export type DefaultHandshakeRequest = WithExpressRequest<RequestLike>;

/**
 * What the secret and payload functions receive besides the request.
 *
 * @example
 * ```ts
 * tokenSec.handshake({ payload: (req, res, { signal }) => fetchToken(req.user, { signal }) });
 * ```
 */
export interface HandshakeContext {
  /**
   * Aborts when the handshake's `timeout` passes or the client disconnects: pass it on to
   * database calls or fetches, so work for a request nobody waits for stops.
   */
  signal: AbortSignal;
  /**
   * The RFC 7638 thumbprint of the browser's DPoP key, verified: mint the token with
   * `cnf: { jkt }` so that it works only with that key. Undefined (payload function only) when
   * `dpop.required` is false and the handshake carried no proof.
   */
  jkt?: string | undefined;
}

/**
 * Options of the server's `tokenSec.handshake()` middleware.
 *
 * @example
 * ```ts
 * app.post('/token', csrfProtection, tokenSec.handshake({
 *   payload: (req, res, { signal }) => mintAccessToken(req.session.userId, { signal }),
 *   terminate: true,
 * }));
 * ```
 */
export interface ServerHandshakeOptions<Req extends RequestLike = DefaultHandshakeRequest, Res extends ServerResponse = ServerResponse> {
  /**
   * The token to deliver: a string, or a function of the request returning one (or a Promise of
   * one). An empty string means "nothing to send": no response header is set.
   */
  payload: string | ((req: Req, res: Res, context: HandshakeContext) => MaybePromise<string>);
  /** Request and response header name. Default `x-tokensec-handshake`. */
  header?: string;
  /** End the response after the handshake instead of calling `next()`. Default false. */
  terminate?: boolean;
  /**
   * The longest handshake response header, in characters. Default 3072, which fits nginx's
   * default `proxy_buffer_size` (4 KiB) with room for your other headers. A longer answer (a
   * payload over about 2,200 bytes) goes in the response body when `terminate` is true, and
   * fails with 500 ERR_TOKENSEC_PAYLOAD_TOO_LARGE otherwise. Raise it (up to 8322) only if every
   * proxy in front allows response headers that large.
   */
  headerLimit?: number;
  /**
   * Worker threads for the key agreement (key pair and ECDH, most of a handshake's CPU) and the
   * DPoP proof's signature check, so a server uses more than one core for handshakes. Default 0: inline. Call the middleware's
   * `close()` at shutdown. See docs/PERFORMANCE.md for when it pays.
   */
  workers?: number;
  /**
   * The secret the client must prove it holds: at least 16 bytes of UTF-8, no U+0000.
   * Default: the CSRF token of this request, which a CSRF middleware mounted before this one
   * validated (see README, "The secret").
   */
  secret?: string | ((req: Req, context: HandshakeContext) => MaybePromise<string | undefined>);
  /**
   * Called once per handshake with what it came to (outcome, status, code, algorithm, duration,
   * request id); never with the payload, the secret or a key. Also published on the
   * node:diagnostics_channel channel `tokensec:handshake`. A listener that throws is ignored.
   */
  onEvent?: (event: HandshakeEvent) => void;
  /**
   * Milliseconds the secret and payload functions may take together before the handshake fails
   * with 503 ERR_TOKENSEC_TIMEOUT. Default 10000.
   */
  timeout?: number;
  /**
   * Also answer handshakes sent with GET, HEAD, OPTIONS or TRACE. Default false: CSRF
   * middlewares skip those methods, so a safe-method handshake would get no CSRF check (and,
   * with credentialed CORS, another origin could get a token). Turn it on only with a `secret`
   * function that checks the request itself.
   */
  allowSafeMethods?: boolean;
  /**
   * DPoP (RFC 9449) on the handshake: the browser's proof commits to its ephemeral key, and the
   * payload function gets the key's thumbprint (`jkt`) to bind the token to. Required by default.
   */
  dpop?: HandshakeDpopOptions<Req>;
}

/** Where the secret comes from, decided once. */
export type SecretSource<Req> =
  | { kind: 'csrf' }
  | { kind: 'value'; value: string }
  | { kind: 'function'; fn: (req: Req, context: HandshakeContext) => MaybePromise<string | undefined> };

/** Where the payload comes from, decided once. */
export type PayloadSource<Req, Res> =
  { kind: 'value'; value: string } | { kind: 'function'; fn: (req: Req, res: Res, context: HandshakeContext) => MaybePromise<string> };

/** The options after checking, with defaults filled in. */
export interface ResolvedHandshakeOptions<Req, Res> {
  /** Lower-case header name. */
  header: string;
  terminate: boolean;
  headerLimit: number;
  /** Worker threads for the handshake's crypto, when `workers` > 0. */
  pool: CryptoPool | undefined;
  timeout: number;
  allowSafeMethods: boolean;
  secret: SecretSource<Req>;
  payload: PayloadSource<Req, Res>;
  dpop: ResolvedHandshakeDpop<Req>;
  onEvent: ((event: HandshakeEvent) => void) | undefined;
}

const KNOWN = [
  'payload',
  'header',
  'terminate',
  'headerLimit',
  'workers',
  'secret',
  'timeout',
  'allowSafeMethods',
  'dpop',
  'onEvent',
] as const;

/** Why a payload cannot be sealed, or undefined when it can (the same checks as encryptPayload's). */
function payloadProblem(payload: string): string | undefined {
  if (LONE_SURROGATE.test(payload)) return 'has an unpaired surrogate, which has no exact UTF-8 encoding';
  const bytes = Buffer.byteLength(payload);
  if (bytes > MAX_PAYLOAD_BYTES) return `is ${bytes} bytes of UTF-8; the protocol carries at most ${MAX_PAYLOAD_BYTES}`;
  return undefined;
}

/** Checks `options` and fills in defaults; throws a TypeError that says how to fix a mistake. */
export function resolveHandshakeOptions<Req extends RequestLike, Res extends ServerResponse>(
  options: ServerHandshakeOptions<Req, Res>,
): ResolvedHandshakeOptions<Req, Res> {
  const given = checkOptions('handshake', options, KNOWN) as Partial<Record<(typeof KNOWN)[number], unknown>>;
  const workers = checkInteger('handshake', 'workers', given.workers, 0, 0, 64, 'threads');
  const resolved = {
    payload: payloadSource(given.payload),
    secret: secretSource(given.secret),
    header: headerName(given.header),
    terminate: checkBoolean('handshake', 'terminate', given.terminate, false),
    headerLimit: checkInteger('handshake', 'headerLimit', given.headerLimit, DEFAULT_HEADER_LIMIT, 256, MAX_RESPONSE_LENGTH, 'characters'),
    pool: undefined as CryptoPool | undefined,
    timeout: checkInteger('handshake', 'timeout', given.timeout, 10_000, 1, 2 ** 31 - 1, 'milliseconds'),
    allowSafeMethods: checkBoolean('handshake', 'allowSafeMethods', given.allowSafeMethods, false),
    dpop: resolveHandshakeDpop<Req>(given.dpop),
    onEvent: eventListener(given.onEvent),
  };
  // Started last, once every option has passed its check: a middleware that throws starts no thread.
  if (workers > 0) resolved.pool = createCryptoPool(workers);
  return resolved;
}

function payloadSource<Req, Res>(payload: unknown): PayloadSource<Req, Res> {
  if (payload === undefined) {
    throw optionError('handshake', 'option "payload" is required: the token to send, as a string or a function (req, res) returning one.');
  }
  if (typeof payload === 'string') {
    const problem = payloadProblem(payload);
    if (problem) throw optionError('handshake', `option "payload" ${problem}.`);
    return { kind: 'value', value: payload };
  }
  if (typeof payload === 'function')
    return { kind: 'function', fn: payload as (req: Req, res: Res, context: HandshakeContext) => MaybePromise<string> };
  throw optionError('handshake', `option "payload" must be a string or a function (req, res) returning one, got ${describe(payload)}.`);
}

function secretSource<Req>(secret: unknown): SecretSource<Req> {
  if (secret === undefined) return { kind: 'csrf' };
  if (typeof secret === 'function')
    return { kind: 'function', fn: secret as (req: Req, context: HandshakeContext) => MaybePromise<string | undefined> };
  if (typeof secret !== 'string' || secret === '') {
    throw optionError(
      'handshake',
      'option "secret" must be a non-empty string or a function (req) returning one; leave it out to use the CSRF token.',
    );
  }
  const problem = secretProblem(secret);
  if (problem)
    throw optionError('handshake', `option "secret" ${problem}. Use a random string, e.g. crypto.randomBytes(32).toString('base64url').`);
  return { kind: 'value', value: secret };
}

function eventListener(listener: unknown): ((event: HandshakeEvent) => void) | undefined {
  if (listener === undefined || typeof listener === 'function') return listener as ((event: HandshakeEvent) => void) | undefined;
  throw optionError('handshake', `option "onEvent" must be a function (event) => void, got ${describe(listener)}.`);
}

function headerName(header: unknown): string {
  if (header === undefined) return DEFAULT_HEADER;
  if (typeof header !== 'string' || !HEADER_NAME.test(header)) {
    throw optionError('handshake', `option "header" must be an HTTP header name such as "${DEFAULT_HEADER}".`);
  }
  if (header.toLowerCase() === CSRF_HEADER) {
    throw optionError('handshake', `option "header" cannot be "${CSRF_HEADER}": the client sends the CSRF token there.`);
  }
  return header.toLowerCase();
}
