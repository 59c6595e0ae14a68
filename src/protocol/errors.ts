/**
 * Every error TokenSec raises, on the server and in the browser, is a TokenSecError with a
 * stable `code`. Branch on `code`, never on `message`: messages may be reworded.
 *
 * Server errors also carry `status`/`statusCode` and `expose` (the http-errors convention that
 * Express's error handlers read), like csurf's EBADCSRFTOKEN.
 *
 * @example
 * ```ts
 * if (error instanceof TokenSecError && error.code === 'ERR_TOKENSEC_DPOP_KEY_MISMATCH') await TokenSec.deleteDpopKey();
 * ```
 */
export type TokenSecErrorCode =
  // server, per request
  | 'ERR_TOKENSEC_HEADER_TOO_LARGE'
  | 'ERR_TOKENSEC_MALFORMED_HEADER'
  | 'ERR_TOKENSEC_UNSUPPORTED_VERSION'
  | 'ERR_TOKENSEC_UNSUPPORTED_ALGORITHM'
  | 'ERR_TOKENSEC_INVALID_PUBLIC_KEY'
  | 'ERR_TOKENSEC_NO_SECRET'
  | 'ERR_TOKENSEC_SECRET_MISMATCH'
  | 'ERR_TOKENSEC_NO_CSRF_MIDDLEWARE'
  | 'ERR_TOKENSEC_SECRET_FAILED'
  | 'ERR_TOKENSEC_PAYLOAD_FAILED'
  | 'ERR_TOKENSEC_TIMEOUT'
  | 'ERR_TOKENSEC_ABORTED'
  | 'ERR_TOKENSEC_METHOD_NOT_ALLOWED'
  | 'ERR_TOKENSEC_PATH_TOO_LONG'
  | 'ERR_TOKENSEC_INVALID_PAYLOAD'
  | 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE'
  | 'ERR_TOKENSEC_BAD_HOST'
  // DPoP (RFC 9449), on the handshake and on API routes
  | 'ERR_TOKENSEC_DPOP_MISSING_PROOF'
  | 'ERR_TOKENSEC_DPOP_INVALID_PROOF'
  | 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF'
  | 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED'
  | 'ERR_TOKENSEC_DPOP_NONCE_STALE'
  | 'ERR_TOKENSEC_DPOP_INVALID_TOKEN'
  | 'ERR_TOKENSEC_DPOP_KEY_MISMATCH'
  | 'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED'
  | 'ERR_TOKENSEC_DPOP_RATE_LIMITED'
  // server-side state: sessions, replay ids, bindings
  | 'ERR_TOKENSEC_STORE_UNAVAILABLE'
  | 'ERR_TOKENSEC_STORE_FULL'
  | 'ERR_TOKENSEC_STORE_RESTARTED'
  | 'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE'
  | 'ERR_TOKENSEC_BINDING_STORE_FULL'
  | 'ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE'
  // Device Bound Session Credentials (docs/DBSC.md)
  | 'ERR_TOKENSEC_DBSC_REQUIRED'
  | 'ERR_TOKENSEC_DBSC_INVALID_PROOF'
  | 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE'
  | 'ERR_TOKENSEC_DBSC_UNKNOWN_SESSION'
  | 'ERR_TOKENSEC_DBSC_ALREADY_REGISTERED'
  // browser client
  | 'ERR_TOKENSEC_INSECURE_CONTEXT'
  | 'ERR_TOKENSEC_INVALID_OPTIONS'
  | 'ERR_TOKENSEC_UNSUPPORTED_BROWSER'
  | 'ERR_TOKENSEC_NETWORK'
  | 'ERR_TOKENSEC_HTTP_STATUS'
  | 'ERR_TOKENSEC_CSRF_REFUSED'
  | 'ERR_TOKENSEC_NO_RESPONSE_HEADER'
  | 'ERR_TOKENSEC_MALFORMED_RESPONSE'
  | 'ERR_TOKENSEC_DECRYPTION_FAILED'
  | 'ERR_TOKENSEC_DPOP_KEY_UNAVAILABLE'
  | 'ERR_TOKENSEC_SESSION_WORKER';

/**
 * The one error class of TokenSec, server and browser alike.
 *
 * @example
 * ```ts
 * app.use((err, req, res, next) => {
 *   if (!(err instanceof TokenSecError)) return next(err);
 *   res.status(err.status ?? 500).json({ code: err.code });
 * });
 * ```
 */
export class TokenSecError extends Error {
  // `declare`: typed here, assigned in the constructor, no class-field code in the browser bundle.
  /** Stable machine-readable code, e.g. `ERR_TOKENSEC_STORE_UNAVAILABLE`: branch on this, not on the message. */
  declare readonly code: TokenSecErrorCode;
  /** HTTP status: on the server, the status to answer with; in the browser, the status received. */
  declare readonly status?: number;
  /** The same as `status`, under the name Express's default error handler reads. */
  declare readonly statusCode?: number;
  /** True for 4xx: the message is safe to show to the client (it never holds a payload or secret). */
  declare readonly expose?: boolean;
  /** Headers the answer must carry (server): `WWW-Authenticate`, `DPoP-Nonce`, `Allow`. */
  declare headers?: Record<string, string>;

  constructor(code: TokenSecErrorCode, message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenSecError';
    this.code = code;
    if (status) {
      this.status = this.statusCode = status;
      this.expose = status < 500;
    }
  }
}
