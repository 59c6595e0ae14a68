/**
 * Express's declaration-merging point, `Express.Request`: express-session adds `req.session`,
 * passport `req.user`, and an app its own fields there. The callbacks of handshake() and dpop()
 * receive it by default, so those fields type-check without generics. Declared here as well, so
 * that the types compile (empty) in apps without Express's types.
 */
import type { DpopRequestInfo } from './dpop/middleware.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- Express's own extension point
  namespace Express {
    interface Request {
      /** What tokenSec.dpop() verified: the token's claims and the DPoP key's thumbprint. */
      tokenSec?: DpopRequestInfo;
    }
  }
}

/** A request type plus whatever the app merged into `Express.Request`. */
export type WithExpressRequest<Base> = Base & Express.Request;
