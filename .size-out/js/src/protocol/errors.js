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
    constructor(code, message, status, options) {
        super(message, options);
        this.name = 'TokenSecError';
        Object.assign(this, status ? { code, status, statusCode: status, expose: status < 500 } : { code });
    }
}
