/**
 * The refresh endpoint: the browser POSTs `Sec-Secure-Session-Id` and a `Secure-Session-Response`
 * signed by the key registered for that session, with a challenge of ours as `jti`. Missing,
 * stale, used or badly signed: 403 with a fresh `Secure-Session-Challenge`, which the browser signs
 * and sends again at once. A session id this login does not have: 401, which ends the browser's
 * DBSC session. Refreshes are accepted at any time (Chromium refreshes before expiry too).
 *
 * Like registration, it carries no CSRF token and is mounted before the CSRF middleware; the
 * single-use challenge and the registered key protect it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TokenSecError } from '../../protocol/errors.js';
import { consumeChallenge, newChallenge, openChallenge } from './challenges.js';
import { CHALLENGE_HEADER, challengeHeader, dbscError, readTokenHeader, RESPONSE_HEADER, SESSION_ID_HEADER } from './headers.js';
import type { ResolvedDbsc } from './options.js';
import { answerSession, isRegistered, loadBinding, storeBinding, urlsFor } from './session.js';
import { verifyDbscProof } from './verify.js';

export async function refresh<Req extends IncomingMessage>(options: ResolvedDbsc<Req>, req: Req, res: ServerResponse): Promise<void> {
  const id = readTokenHeader(req, SESSION_ID_HEADER);
  const binding = id === undefined ? undefined : await loadBinding(options, req);
  if (id === undefined || !isRegistered(binding) || binding.id !== id) {
    throw dbscError('ERR_TOKENSEC_DBSC_UNKNOWN_SESSION', 'DBSC refresh for a session this login does not have.', 401);
  }
  const retry = (code: 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE' | 'ERR_TOKENSEC_DBSC_INVALID_PROOF', message: string) =>
    dbscError(code, message, 403, {
      [CHALLENGE_HEADER]: challengeHeader(newChallenge(options.key, 'refresh', id, options.nowSeconds(), options.challengeTtl), id),
    });
  const proof = readTokenHeader(req, RESPONSE_HEADER);
  if (proof === undefined) throw retry('ERR_TOKENSEC_DBSC_STALE_CHALLENGE', 'DBSC refresh without a proof: sign the challenge sent.');
  let claims;
  try {
    ({ claims } = verifyDbscProof(proof, { algorithms: options.algorithms, stored: binding }));
  } catch (error) {
    throw error instanceof TokenSecError ? retry('ERR_TOKENSEC_DBSC_INVALID_PROOF', error.message) : error;
  }
  if (claims.aud !== undefined && !urlsFor(options, req, options.refreshPath).includes(claims.aud)) {
    throw retry('ERR_TOKENSEC_DBSC_INVALID_PROOF', 'Invalid DBSC proof: aud is not this refresh URL.');
  }
  const now = options.nowSeconds();
  const opened = openChallenge(options.key, claims.jti, 'refresh', id, now);
  if (!opened || !(await consumeChallenge(options.challengeStore, options.storeTimeout, opened, now))) {
    throw retry('ERR_TOKENSEC_DBSC_STALE_CHALLENGE', 'DBSC refresh with a challenge that is unknown, expired or used: sign the one sent.');
  }
  const { alg, jwk, jkt } = binding;
  await storeBinding(options, (state) => state.refreshed(req, { id, alg, jwk, jkt }));
  answerSession(options, res, id);
}
