/**
 * `tokenSec.dbsc()`: Device Bound Session Credentials (W3C WebAppSec draft) for the session that
 * guards the handshake. The browser keeps a key that page script cannot reach and proves it holds
 * it to refresh a short-lived cookie; a copied cookie jar stops working once that cookie expires.
 * docs/DBSC.md gives the headers; README.md, "Device-bound sessions", the setup.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dbscError } from './headers.js';
import { markForHandshake } from './handshake-hook.js';
import type { Middleware } from '../options.js';
import { resolveDbscOptions, type DbscOptions } from './options.js';
import { refresh } from './refresh.js';
import { register } from './registration.js';
import { requestRegistration, type RegistrationRequestOptions } from './request-registration.js';
import { checkDbscHost } from './session.js';
import { checkBoundSession, requireBoundSession } from './require-bound-session.js';
import { readRequestTarget } from '../request-target.js';
import { followSessionStore } from '../session/state.js';
import { followSessionStoreRecords } from './session-record.js';

export type { DbscBinding, DbscOptions, DbscSessionStore } from './options.js';
export type { RegistrationRequestOptions } from './request-registration.js';
export type { DbscAlgorithm, DbscJwk } from './verify.js';

/**
 * What `tokenSec.dbsc()` returns: the middleware that answers the browser's registration and
 * refresh, and the call a login handler makes to ask for a registration.
 */
export interface Dbsc<Req extends IncomingMessage = IncomingMessage> {
  /**
   * Answers POSTs to the registration and refresh paths, and marks every other request so that
   * tokenSec.handshake() refuses a bound session without a live bound cookie. Mount it after the
   * session middleware and before the CSRF middleware.
   */
  middleware: Middleware<Req, ServerResponse>;
  /** In the login handler, once the session exists: asks the browser to register a key. */
  requestRegistration(req: Req, res: ServerResponse, options?: RegistrationRequestOptions): Promise<boolean>;
  /** For routes that must come from the device: 401 ERR_TOKENSEC_DBSC_REQUIRED on a bound session without a live bound cookie. */
  requireBoundSession: Middleware<Req, ServerResponse>;
}

/**
 * Device Bound Session Credentials (Chrome's DBSC) for the app's session: returns the middleware
 * that answers the browser's registration and refreshes, and the call that asks for a
 * registration at login (docs/DBSC.md).
 *
 * @example
 * ```ts
 * const dbsc = tokenSec.dbsc({ secret: process.env.DBSC_SECRET });
 * app.use(session({ secret: process.env.SESSION_SECRET, resave: false, saveUninitialized: false }));
 * app.use(dbsc.middleware); // before the CSRF middleware
 * app.use(csrfSync().csrfSynchronisedProtection);
 * ```
 */
export function dbsc<Req extends IncomingMessage = IncomingMessage>(options: DbscOptions<Req>): Dbsc<Req> {
  const resolved = resolveDbscOptions<Req>(options);
  const handle = (run: (req: Req, res: ServerResponse) => Promise<void>, req: Req, res: ServerResponse, next: (err?: unknown) => void) => {
    if ((req.method ?? '').toUpperCase() !== 'POST') {
      const error = dbscError('ERR_TOKENSEC_METHOD_NOT_ALLOWED', 'DBSC registration and refresh are POST requests.', 405);
      error.headers = { ...error.headers, Allow: 'POST' };
      next(error);
      return;
    }
    try {
      checkDbscHost(resolved, req);
    } catch (error) {
      next(error);
      return;
    }
    run(req, res).catch(next);
  };
  return {
    middleware(req, res, next) {
      // Per-session state dies with the session: the DPoP binding's keys (session/state.ts) and the DBSC record.
      followSessionStore(req);
      followSessionStoreRecords(req);
      const path = readRequestTarget(req).path;
      if (path === resolved.registrationPath) return handle((q, s) => register(resolved, q, s), req, res, next);
      if (path === resolved.refreshPath) return handle((q, s) => refresh(resolved, q, s), req, res, next);
      if (resolved.handshake) markForHandshake(req, () => checkBoundSession(resolved, req));
      next();
    },
    requestRegistration: requestRegistration(resolved),
    requireBoundSession: requireBoundSession(resolved),
  };
}
