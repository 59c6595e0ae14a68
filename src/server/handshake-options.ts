/**
 * The handshake middleware's options: their public type, and their checking and resolution into
 * one typed object when the middleware is created, so the per-request pipeline never re-checks or
 * casts them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CSRF_HEADER, DEFAULT_HEADER, HEADER_NAME } from '../protocol/wire.js';
import { checkBoolean, checkInteger, checkOptions, describe, optionError } from './options.js';

/** The request as the handshake sees it: node:http's, plus what Express and a CSRF middleware add. */
export interface HandshakeRequestLike extends IncomingMessage {
  originalUrl?: string;
  csrfToken?: () => string;
}

export type MaybePromise<T> = T | Promise<T>;

/**
 * Options of the server's `tokenSec.handshake()` middleware.
 *
 * @example
 * ```ts
 * app.post('/token', tokenSec.handshake({
 *   payload: (req) => mintAccessToken(req.user),
 *   terminate: true,
 * }));
 * ```
 */
export interface ServerHandshakeOptions<Req extends HandshakeRequestLike = HandshakeRequestLike, Res extends ServerResponse = ServerResponse> {
  /**
   * The token to deliver: a string, or a function of the request returning one (or a Promise of
   * one). An empty string means "nothing to send": no response header is set.
   */
  payload: string | ((req: Req, res: Res) => MaybePromise<string>);
  /** Request and response header name. Default `x-tokensec-handshake`. */
  header?: string;
  /** End the response after the handshake instead of calling `next()`. Default false. */
  terminate?: boolean;
  /**
   * The secret the client must prove it holds, mixed into the key. Default: the CSRF token the
   * request carries in `x-csrf-token`, which a CSRF middleware mounted before this one validated.
   */
  secret?: string | ((req: Req) => MaybePromise<string | undefined>);
  /** Milliseconds the payload function may take before the handshake fails with 503. Default 10000. */
  timeout?: number;
}

/** Where the secret comes from, decided once. */
export type SecretSource<Req> =
  | { kind: 'csrf' }
  | { kind: 'value'; value: string }
  | { kind: 'function'; fn: (req: Req) => MaybePromise<string | undefined> };

/** Where the payload comes from, decided once. */
export type PayloadSource<Req, Res> = { kind: 'value'; value: string } | { kind: 'function'; fn: (req: Req, res: Res) => MaybePromise<string> };

/** The options after checking, with defaults filled in. */
export interface ResolvedHandshakeOptions<Req, Res> {
  /** Lower-case header name. */
  header: string;
  terminate: boolean;
  timeout: number;
  secret: SecretSource<Req>;
  payload: PayloadSource<Req, Res>;
}

const KNOWN = ['payload', 'header', 'terminate', 'secret', 'timeout'] as const;

/** Checks `options` and fills in defaults; throws a TypeError that says how to fix a mistake. */
export function resolveHandshakeOptions<Req extends HandshakeRequestLike, Res extends ServerResponse>(
  options: ServerHandshakeOptions<Req, Res>,
): ResolvedHandshakeOptions<Req, Res> {
  const given = checkOptions('handshake', options, KNOWN) as Partial<Record<(typeof KNOWN)[number], unknown>>;
  return {
    payload: payloadSource(given.payload),
    secret: secretSource(given.secret),
    header: headerName(given.header),
    terminate: checkBoolean('handshake', 'terminate', given.terminate, false),
    timeout: checkInteger('handshake', 'timeout', given.timeout, 10_000, 1, 2 ** 31 - 1, 'milliseconds'),
  };
}

function payloadSource<Req, Res>(payload: unknown): PayloadSource<Req, Res> {
  if (payload === undefined) {
    throw optionError('handshake', 'option "payload" is required: the token to send, as a string or a function (req, res) returning one.');
  }
  if (typeof payload === 'string') return { kind: 'value', value: payload };
  if (typeof payload === 'function') return { kind: 'function', fn: payload as (req: Req, res: Res) => MaybePromise<string> };
  throw optionError('handshake', `option "payload" must be a string or a function (req, res) returning one, got ${describe(payload)}.`);
}

function secretSource<Req>(secret: unknown): SecretSource<Req> {
  if (secret === undefined) return { kind: 'csrf' };
  if (typeof secret === 'function') return { kind: 'function', fn: secret as (req: Req) => MaybePromise<string | undefined> };
  if (typeof secret === 'string' && secret !== '') return { kind: 'value', value: secret };
  throw optionError('handshake', 'option "secret" must be a non-empty string or a function (req) returning one; leave it out to use the CSRF token.');
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
