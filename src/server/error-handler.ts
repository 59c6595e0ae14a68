/**
 * `tokenSec.errorHandler()`: a ready JSON error handler for TokenSec's errors (and the CSRF
 * middlewares' EBADCSRFTOKEN), mounted after the routes. It tells the developer why a 5xx happened
 * (the log) and the browser what to do (a stable code and a one-line fix).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TokenSecError, type TokenSecErrorCode } from '../protocol/errors.js';
import { checkOptions, describe, optionError } from './options.js';

/**
 * Where `tokenSec.errorHandler()` logs a 5xx: `text` holds the status, the code, the request's
 * method and path (no query), and the error's and each cause's stack (messages and stack frames
 * only: never headers, bodies or other properties of an error). `error` is the error itself, for
 * a structured logger.
 *
 * @example
 * ```ts
 * const log: ErrorLogger = (text) => console.warn(text);
 * ```
 */
export type ErrorLogger = (text: string, error: unknown) => void;

/**
 * Options of `tokenSec.errorHandler()`.
 *
 * @example
 * ```ts
 * app.use(tokenSec.errorHandler({ log: (text) => console.error(text) }));
 * ```
 */
export interface ErrorHandlerOptions {
  /**
   * Where 5xx errors are logged (see `ErrorLogger`), or false for nowhere. Default: `console.error`,
   * unless `NODE_ENV` is `production` or `test` (as Express's own handler: in production, pass your
   * logger).
   */
  log?: ErrorLogger | false;
}

/** The response header that carries a TokenSecError's code to the browser client. */
export const ERROR_HEADER = 'TokenSec-Error';

/**
 * Puts `TokenSec-Error: <code>` into a TokenSecError's `err.headers` (kept with the headers it
 * has), so whichever handler answers it, Express's default one too, tells the client the code.
 * Anything else comes back unchanged.
 */
export function withErrorHeader(error: unknown): unknown {
  if (!(error instanceof TokenSecError)) return error;
  error.headers = { ...error.headers, [ERROR_HEADER]: error.code };
  return error;
}

/** A connect-style error middleware (four parameters), as Express calls it after `next(err)`. */
export type ErrorMiddleware = (err: unknown, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

const isCsrfError = (err: unknown): err is Error & { code: string; status?: number } =>
  err instanceof Error && (err as { code?: unknown }).code === 'EBADCSRFTOKEN';

/** What the browser reads for a refused CSRF token (the CSRF middlewares' own messages say only "invalid csrf token"). */
export const CSRF_REFUSED_MESSAGE =
  "The CSRF middleware refused the CSRF token: load a page through initialize() to get this session's token (a login starts a new session with a new one), then retry.";

/**
 * What a 5xx says to the browser: a one-line fix per code, free of the details its `message` holds
 * for the log (the app's error, sizes, timings). A code not listed says where the details are.
 */
export const PUBLIC_MESSAGES: Partial<Record<TokenSecErrorCode, string>> = {
  ERR_TOKENSEC_NO_CSRF_MIDDLEWARE:
    'No CSRF middleware ran before tokenSec.handshake(): mount csrf-sync, csrf-csrf or csurf before it, or pass a "secret" option.',
  ERR_TOKENSEC_SECRET_FAILED: "The handshake's secret function failed: the server's log says why.",
  ERR_TOKENSEC_PAYLOAD_FAILED: "The handshake's payload function failed: the server's log says why.",
  ERR_TOKENSEC_INVALID_PAYLOAD: "The handshake's payload function returned no usable string: the server's log says why.",
  ERR_TOKENSEC_PAYLOAD_TOO_LARGE: 'The token does not fit the handshake: see README, "Large tokens and proxies".',
  ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE:
    "TokenSec keeps this state in the session: mount express-session (or another server-side session) before it; the server's log names the option for other stores.",
  ERR_TOKENSEC_TIMEOUT: "The server's secret or payload function did not answer in time: try again later.",
  ERR_TOKENSEC_STORE_UNAVAILABLE: 'A TokenSec store did not answer in time: try again later.',
  ERR_TOKENSEC_STORE_FULL: "The server's replay store is full: try again later.",
  ERR_TOKENSEC_BINDING_STORE_FULL: "The server's binding store is full: no new session can be bound now; try again later.",
  ERR_TOKENSEC_STORE_RESTARTED: "The server's replay store lost its data: send a fresh proof after Retry-After.",
  ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE: 'The session store did not answer in time: try again later.',
};
const INTERNAL_ERROR = "Internal error: the server's log says why.";

/** Causes followed at most (a cycle of causes ends here too). */
const MAX_CAUSES = 8;

/** The error's stack, else its name and message; a thrown non-Error is named by its type only (it could hold anything). */
const describeError = (error: unknown): string =>
  error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : `a thrown ${describe(error)}, not an Error`;

/** The error and each cause below it, one stack after another. */
function errorChain(error: unknown): string {
  const lines = [describeError(error)];
  const seen = new Set([error]);
  let cause = error instanceof Error ? error.cause : undefined;
  while (cause !== undefined && !seen.has(cause) && seen.size <= MAX_CAUSES) {
    seen.add(cause);
    lines.push(`Caused by: ${describeError(cause)}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return lines.join('\n');
}

/** Method and path, without the query (it may carry anything). */
const describeRequest = (req: IncomingMessage & { originalUrl?: string }) =>
  `${req.method} ${(req.originalUrl ?? req.url ?? '').split('?')[0]}`;

/**
 * A hint for an error that is not TokenSec's but went wrong inside `initialize()`: most often
 * csrf-sync's `req.csrfToken()` reading a session that no session middleware made.
 */
function initializeHint(err: unknown, req: IncomingMessage & { session?: unknown }): string | undefined {
  if (!(err instanceof Error)) return undefined;
  // A CSRF middleware (csrf-sync reads req.session) that ran with no session middleware before it.
  if (req.session === undefined && err instanceof TypeError)
    return 'This request has no session (req.session is undefined): mount a session middleware (express-session) before the CSRF middleware and initialize().';
  if (/\btokenSecInitialize\b/.test(err.stack ?? ''))
    return "It was thrown inside tokenSec.initialize(), by the CSRF middleware's req.csrfToken().";
  return undefined;
}

const defaultLogger = (): ErrorLogger | false =>
  process.env.NODE_ENV === 'production' || process.env.NODE_ENV === 'test' ? false : (text) => console.error(text);

/**
 * Answers TokenSec errors with their status and `{ "code": …, "message": … }`: for a 4xx its
 * message, for a 5xx a one-line fix (`PUBLIC_MESSAGES`) while the error itself, with its causes, goes
 * to `log`. Also `TokenSec-Error: <code>` (for TokenSecErrors), the headers the error carries
 * (`WWW-Authenticate`, `DPoP-Nonce`, `Allow`) and `Cache-Control: no-store`. A CSRF middleware's
 * `EBADCSRFTOKEN` gets 403 the same way, with a message that says what to do. Any other error, or
 * a response already started, goes on to `next(err)`; one thrown inside `initialize()` is logged
 * first with what it means (no session, most often).
 *
 * @example
 * ```ts
 * app.post('/token', csrfProtection, tokenSec.handshake({ payload, terminate: true }));
 * app.get('/api/me', tokenSec.dpop({ verifyToken }), me);
 * app.use(tokenSec.errorHandler());
 * ```
 */
export function errorHandler(options: ErrorHandlerOptions = {}): ErrorMiddleware {
  const { log = defaultLogger() } = checkOptions('errorHandler', options, ['log']);
  if (log !== false && typeof log !== 'function') {
    throw optionError('errorHandler', `option "log" must be a function (text, error) => void or false, got ${describe(log)}.`);
  }
  const logger = log as ErrorLogger | false;
  return function tokenSecErrorHandler(err, req, res, next) {
    if (res.headersSent || !(err instanceof TokenSecError || isCsrfError(err))) {
      const hint = initializeHint(err, req);
      if (logger && hint) logger(`tokenSec.errorHandler(): ${describeRequest(req)} failed. ${hint}\n${errorChain(err)}`, err);
      next(err);
      return;
    }
    const tokenSecError = err instanceof TokenSecError ? err : undefined;
    const status = tokenSecError ? (tokenSecError.status ?? 500) : (err.status ?? 403);
    let message = tokenSecError ? err.message : CSRF_REFUSED_MESSAGE;
    if (status >= 500) {
      message = PUBLIC_MESSAGES[err.code as TokenSecErrorCode] ?? INTERNAL_ERROR;
      if (logger) logger(`tokenSec.errorHandler(): ${status} ${err.code} on ${describeRequest(req)}\n${errorChain(err)}`, err);
    }
    const headers = tokenSecError ? { ...tokenSecError.headers, [ERROR_HEADER]: tokenSecError.code } : undefined;
    for (const [name, value] of Object.entries(headers ?? {})) res.setHeader(name, value);
    const body = JSON.stringify({ code: err.code, message });
    res.statusCode = status;
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  };
}
