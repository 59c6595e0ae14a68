/**
 * `tokenSec.errorHandler()`: a ready JSON error handler for TokenSec's errors (and the CSRF
 * middlewares' EBADCSRFTOKEN), mounted after the routes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TokenSecError } from '../protocol/errors.js';
import { checkOptions } from './options.js';

/**
 * Options of `tokenSec.errorHandler()`. None yet: the object is accepted for future use and
 * checked, so a misspelt option is an error rather than silently ignored.
 *
 * @example
 * ```ts
 * app.use(tokenSec.errorHandler({}));
 * ```
 */
export type ErrorHandlerOptions = Record<string, never>;

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

/**
 * Answers TokenSec errors with their status and `{ "code": …, "message": … }` (the message only
 * for 4xx; a 5xx says "Internal error"), `TokenSec-Error: <code>` (for TokenSecErrors), the headers
 * the error carries (`WWW-Authenticate`, `DPoP-Nonce`, `Allow`) and `Cache-Control: no-store`. A CSRF middleware's `EBADCSRFTOKEN` gets
 * 403 the same way. Any other error, or a response already started, goes on to `next(err)`.
 *
 * @example
 * ```ts
 * app.post('/token', csrfProtection, tokenSec.handshake({ payload, terminate: true }));
 * app.get('/api/me', tokenSec.dpop({ verifyToken }), me);
 * app.use(tokenSec.errorHandler());
 * ```
 */
export function errorHandler(options: ErrorHandlerOptions = {}): ErrorMiddleware {
  checkOptions('errorHandler', options, []);
  return function tokenSecErrorHandler(err, _req, res, next) {
    if (res.headersSent || !(err instanceof TokenSecError || isCsrfError(err))) {
      next(err);
      return;
    }
    const status = err instanceof TokenSecError ? (err.status ?? 500) : (err.status ?? 403);
    const headers = err instanceof TokenSecError ? { ...err.headers, [ERROR_HEADER]: err.code } : undefined;
    for (const [name, value] of Object.entries(headers ?? {})) res.setHeader(name, value);
    const body = JSON.stringify({ code: err.code, message: status < 500 ? err.message : 'Internal error' });
    res.statusCode = status;
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  };
}
