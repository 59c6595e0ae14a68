/**
 * Express's declaration-merging point, `Express.Request`: express-session adds `req.session`,
 * passport `req.user`, and an app its own fields there. The callbacks of handshake() and dpop()
 * receive it by default, so those fields type-check without generics. Declared here as well, so
 * that the types compile (empty) in apps without Express's types.
 */
import type { IncomingMessage } from 'node:http';

declare global {
  // A namespace, because that is how Express declares its extension point.
  namespace Express {
    interface Request {
      /** What tokenSec.dpop() verified: the token's claims and the DPoP key's thumbprint. */
      tokenSec?: DpopRequestInfo;
    }
  }
}

/** A request type plus whatever the app merged into `Express.Request`. */
export type WithExpressRequest<Base> = Base & Express.Request;

/**
 * The claims of a verified access token, as the app's `verifyToken` returns them; `cnf.jkt` must
 * be the proof key's thumbprint.
 *
 * @example
 * ```ts
 * const claims: TokenClaims = { sub: 'alice', exp: 1767225900, cnf: { jkt: 'oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U' } };
 * ```
 */
export type TokenClaims = Record<string, unknown> & {
  /** The confirmation claim (RFC 7800). */
  cnf?: {
    /** The RFC 7638 thumbprint of the DPoP key the token is bound to (RFC 9449 §6). */
    jkt?: unknown;
  };
};

/**
 * What `dpop()` puts on the request (`req.tokenSec`) for the route.
 *
 * @example
 * ```ts
 * app.get('/api/me', tokenSec.dpop({ verifyToken }), (req, res) => res.json({ sub: req.tokenSec?.claims.sub, key: req.tokenSec?.jkt }));
 * ```
 */
export interface DpopRequestInfo {
  /** The access token from the `Authorization: DPoP` header, as sent. */
  token: string;
  /** The claims `verifyToken` returned. */
  claims: TokenClaims;
  /** The proof key's thumbprint, equal to the token's `cnf.jkt`. */
  jkt: string;
}

/**
 * The request as TokenSec's middlewares see it: node:http's, plus what Express, a CSRF middleware
 * and `dpop()` add, where present.
 *
 * @example
 * ```ts
 * const url = (req: RequestLike) => `https://api.example${req.originalUrl ?? req.url}`;
 * app.use('/api', tokenSec.dpop({ verifyToken, url }));
 * ```
 */
export interface RequestLike extends IncomingMessage {
  /** Express's: the URL as sent, unchanged by mounting (`req.url` is relative to the mount point). */
  originalUrl?: string;
  /** Express's, honouring `trust proxy`. */
  protocol?: string;
  /** Express's header getter (its Host honours `trust proxy`). */
  get?: (name: string) => string | undefined;
  /** Express's: the request came over HTTPS (honouring `trust proxy`). */
  secure?: boolean;
  /** Set by a CSRF middleware (csrf-sync, csrf-csrf and csurf each type it their own way). */
  csrfToken?: unknown;
  /** The parsed body, where a body parser ran (read for the `_csrf` field only by CSRF middlewares). */
  body?: unknown;
  /** Set by `dpop()`. */
  tokenSec?: DpopRequestInfo;
}

/** @deprecated Since 3.1: use {@link RequestLike}, the one request type of every TokenSec middleware. */
export type DpopRequestLike = RequestLike;

/** @deprecated Since 3.1: use {@link RequestLike}, the one request type of every TokenSec middleware. */
export type HandshakeRequestLike = RequestLike;
