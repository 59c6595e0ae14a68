import type { IncomingMessage, ServerResponse } from 'node:http';
import { TokenSecError } from './errors.js';
import { checkBoolean, checkInteger, checkOptions, describe, optionError, type Middleware } from './options.js';
import { generateServerKeyPair, sealPayload, verifyBinding } from './protocol.js';
import { CSRF_HEADER, DEFAULT_HEADER, HEADER_NAME, MAX_PAYLOAD_BYTES, parseRequest, type RequestTarget } from './wire.js';

/** The request as the handshake sees it: node:http's, plus what Express and a CSRF middleware add. */
export interface HandshakeRequestLike extends IncomingMessage {
  originalUrl?: string;
  csrfToken?: () => string;
}

type MaybePromise<T> = T | Promise<T>;

export interface HandshakeOptions<Req extends HandshakeRequestLike = HandshakeRequestLike, Res extends ServerResponse = ServerResponse> {
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

const OPTIONS = ['payload', 'header', 'terminate', 'secret', 'timeout'] as const;

/** Path as sent on the request line (Express's originalUrl survives mounting), without query. */
function requestPath(req: HandshakeRequestLike): string {
  const url = req.originalUrl ?? req.url ?? '/';
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

function appendVary(res: ServerResponse, field: string): void {
  const current = res.getHeader('vary');
  const value = Array.isArray(current) ? current.join(', ') : current === undefined ? '' : String(current);
  const fields = value.split(',').map((f) => f.trim().toLowerCase());
  if (fields.includes('*') || fields.includes(field)) return;
  res.setHeader('Vary', value ? `${value}, ${field}` : field);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TokenSecError('ERR_TOKENSEC_PAYLOAD_TIMEOUT', `TokenSec payload function did not settle within ${ms} ms.`, 503)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Answers handshake requests: requests carrying the handshake header get the payload encrypted
 * to the key they sent; other requests pass straight through. Errors go to `next(err)` as
 * TokenSecErrors with `status` and a stable `code`.
 */
export function handshake<Req extends HandshakeRequestLike = HandshakeRequestLike, Res extends ServerResponse = ServerResponse>(
  options: HandshakeOptions<Req, Res>,
): Middleware<Req, Res> {
  const o = checkOptions('handshake', options, OPTIONS);
  const { payload, secret } = o;
  if (payload === undefined) {
    throw optionError('handshake', 'option "payload" is required: the token to send, as a string or a function (req, res) returning one.');
  }
  if (typeof payload !== 'string' && typeof payload !== 'function') {
    throw optionError('handshake', `option "payload" must be a string or a function (req, res) returning one, got ${describe(payload)}.`);
  }
  if (secret !== undefined && (typeof secret === 'function' ? false : typeof secret !== 'string' || secret === '')) {
    throw optionError('handshake', 'option "secret" must be a non-empty string or a function (req) returning one; leave it out to use the CSRF token.');
  }
  const header = o.header ?? DEFAULT_HEADER;
  if (typeof header !== 'string' || !HEADER_NAME.test(header)) {
    throw optionError('handshake', `option "header" must be an HTTP header name such as "${DEFAULT_HEADER}".`);
  }
  if (header.toLowerCase() === CSRF_HEADER) {
    throw optionError('handshake', `option "header" cannot be "${CSRF_HEADER}": the client sends the CSRF token there.`);
  }
  const terminate = checkBoolean('handshake', 'terminate', o.terminate, false);
  const timeout = checkInteger('handshake', 'timeout', o.timeout, 10_000, 1, 2 ** 31 - 1, 'milliseconds');
  const headerName = header.toLowerCase();

  async function getSecret(req: Req): Promise<string> {
    let value: unknown;
    if (secret === undefined) {
      if (typeof req.csrfToken !== 'function') {
        throw new TokenSecError(
          'ERR_TOKENSEC_NO_CSRF_MIDDLEWARE',
          'tokenSec.handshake() uses the CSRF token as its secret, but no CSRF middleware ran before it (req.csrfToken is missing). ' +
            'Mount csurf, csrf-sync or csrf-csrf before it, or pass a "secret" option.',
          500,
        );
      }
      value = req.headers[CSRF_HEADER];
    } else if (typeof secret === 'function') {
      try {
        value = await (secret as (req: Req) => MaybePromise<string | undefined>)(req);
      } catch (cause) {
        throw new TokenSecError('ERR_TOKENSEC_SECRET_FAILED', 'TokenSec secret function threw or rejected.', 500, { cause });
      }
      if (value !== undefined && value !== null && typeof value !== 'string') {
        throw new TokenSecError('ERR_TOKENSEC_SECRET_FAILED', `TokenSec secret function must return a string, got ${describe(value)}.`, 500);
      }
    } else {
      value = secret;
    }
    if (typeof value !== 'string' || value === '') {
      throw new TokenSecError(
        'ERR_TOKENSEC_NO_SECRET',
        secret === undefined ? `TokenSec handshake without a CSRF token in the ${CSRF_HEADER} header.` : 'TokenSec handshake without a secret for this request.',
        403,
      );
    }
    return value;
  }

  async function getPayload(req: Req, res: Res): Promise<string> {
    if (typeof payload === 'string') return payload;
    let value: unknown;
    try {
      value = await withTimeout(Promise.resolve((payload as (req: Req, res: Res) => MaybePromise<string>)(req, res)), timeout);
    } catch (cause) {
      if (cause instanceof TokenSecError) throw cause;
      throw new TokenSecError('ERR_TOKENSEC_PAYLOAD_FAILED', 'TokenSec payload function threw or rejected.', 500, { cause });
    }
    if (typeof value !== 'string') {
      throw new TokenSecError('ERR_TOKENSEC_INVALID_PAYLOAD', `TokenSec payload function must return a string, got ${describe(value)}.`, 500);
    }
    return value;
  }

  async function answer(req: Req, res: Res, value: string): Promise<void> {
    const request = parseRequest(value);
    const target: RequestTarget = { header: headerName, method: req.method ?? 'GET', path: requestPath(req) };
    const secretValue = await getSecret(req);
    verifyBinding(request, secretValue, target);
    const serverKeyPair = generateServerKeyPair(request.algorithm);
    const sharedSecret = serverKeyPair.deriveSharedSecret(request.publicKey);
    const token = await getPayload(req, res);
    // Whatever is sent, this answer must never be stored by a cache.
    res.setHeader('Cache-Control', 'no-store');
    appendVary(res, headerName);
    if (token === '') return;
    if (Buffer.byteLength(token) > MAX_PAYLOAD_BYTES) {
      throw new TokenSecError('ERR_TOKENSEC_PAYLOAD_TOO_LARGE', `TokenSec payload is larger than ${MAX_PAYLOAD_BYTES} bytes of UTF-8.`, 500);
    }
    res.setHeader(headerName, sealPayload(request, serverKeyPair.publicKey, sharedSecret, secretValue, target, token));
  }

  return function tokenSecHandshake(req, res, next) {
    const value = req.headers[headerName];
    if (value === undefined) {
      next();
      return;
    }
    // Node joins repeated custom headers with ", ", which parseRequest refuses; an array only
    // appears for a handful of well-known names, but keep the type honest.
    answer(req, res, Array.isArray(value) ? value.join(', ') : value).then(() => {
      if (terminate) res.end();
      else next();
    }, next);
  };
}
