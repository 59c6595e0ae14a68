/**
 * Routes that need the device: on a session with a registered DBSC key, the request must carry a
 * live bound cookie, or it gets 401 ERR_TOKENSEC_DBSC_REQUIRED. Chromium never sends such a
 * request: it refreshes first. A copied cookie jar does, once its bound cookie has expired.
 * Sessions without a DBSC key (browsers without DBSC) pass as before.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Middleware } from '../options.js';
import { dbscError } from './headers.js';
import type { ResolvedDbsc } from './options.js';
import { hasLiveCookie, isRegistered, loadBinding } from './session.js';

/** Resolves when the request may go on; rejects with 401 ERR_TOKENSEC_DBSC_REQUIRED otherwise. */
export async function checkBoundSession<Req extends IncomingMessage>(options: ResolvedDbsc<Req>, req: Req): Promise<void> {
  const binding = await loadBinding(options, req);
  if (isRegistered(binding) && !hasLiveCookie(options, req, binding.id)) {
    throw dbscError(
      'ERR_TOKENSEC_DBSC_REQUIRED',
      'This session is bound to a device (DBSC) and the request has no live bound cookie: it must come from that browser.',
      401,
    );
  }
}

export function requireBoundSession<Req extends IncomingMessage>(options: ResolvedDbsc<Req>): Middleware<Req, ServerResponse> {
  return function tokenSecRequireBoundSession(req, _res, next) {
    checkBoundSession(options, req).then(() => next(), next);
  };
}
