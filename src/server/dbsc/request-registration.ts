/**
 * The login response's part: `Secure-Session-Registration`, asking a browser with DBSC to make a
 * key and register it. The challenge it must sign (and the authorization value, if any) is kept
 * in the login's binding; a browser without DBSC ignores the header and nothing else changes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { optionError } from '../options.js';
import { newChallenge } from './challenges.js';
import { REGISTRATION_HEADER, registrationHeader } from './headers.js';
import { isRegistered, loadBinding, storeBinding } from './session.js';
import type { ResolvedDbsc } from './options.js';

/** Options of `requestRegistration(req, res, options)`. */
export interface RegistrationRequestOptions {
  /** A value the browser echoes in its proof's `authorization` claim (printable ASCII, at most 512). */
  authorization?: string;
}

/**
 * Returns `requestRegistration(req, res, options?)`: call it in the login handler, after the
 * session is made (regenerated). Resolves true when the header was set, false when this login's
 * session is already registered.
 */
export function requestRegistration<Req extends IncomingMessage>(options: ResolvedDbsc<Req>) {
  return async function requestDbscRegistration(req: Req, res: ServerResponse, request: RegistrationRequestOptions = {}): Promise<boolean> {
    const { authorization } = request;
    if (authorization !== undefined && (typeof authorization !== 'string' || !/^[\x20-\x7e]{1,512}$/.test(authorization))) {
      throw optionError('dbsc', 'requestRegistration(): "authorization" must be 1 to 512 printable ASCII characters.');
    }
    const binding = await loadBinding(options, req);
    if (isRegistered(binding)) return false;
    const challenge = newChallenge(options.key, 'registration', '', options.nowSeconds(), options.challengeTtl);
    const pending = authorization === undefined ? { challenge } : { challenge, authorization };
    await storeBinding(options, (state) => state.request(req, pending));
    res.setHeader(REGISTRATION_HEADER, registrationHeader(options.algorithms, options.registrationPath, challenge, authorization));
    return true;
  };
}
