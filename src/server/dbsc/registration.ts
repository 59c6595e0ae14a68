/**
 * The registration endpoint: the browser POSTs `Secure-Session-Response`, a dbsc+jwt signed by
 * the key it just made, with that key in the header and the login's challenge as `jti`. Verified,
 * the key is stored in the login's binding (once: a second registration is refused), and the
 * answer is the session instructions, the first bound cookie and a challenge for the first refresh.
 *
 * It carries no CSRF token: mount it before the CSRF middleware. What protects it is the challenge,
 * which only this login's response carried, and which is good once.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { consumeChallenge, openChallenge } from './challenges.js';
import { dbscError, readTokenHeader, RESPONSE_HEADER } from './headers.js';
import type { ResolvedDbsc } from './options.js';
import { answerSession, isRegistered, loadBinding, storeBinding, urlsFor } from './session.js';
import { verifyDbscProof } from './verify.js';

const stale = (why: string) =>
  dbscError('ERR_TOKENSEC_DBSC_STALE_CHALLENGE', `DBSC registration refused: ${why}. Log in again to get a new challenge.`, 403);

export async function register<Req extends IncomingMessage>(options: ResolvedDbsc<Req>, req: Req, res: ServerResponse): Promise<void> {
  const proof = readTokenHeader(req, RESPONSE_HEADER);
  if (proof === undefined) {
    throw dbscError('ERR_TOKENSEC_DBSC_INVALID_PROOF', 'DBSC registration without a Secure-Session-Response header.', 400);
  }
  const binding = await loadBinding(options, req);
  if (isRegistered(binding)) {
    throw dbscError('ERR_TOKENSEC_DBSC_ALREADY_REGISTERED', 'This session already has a registered DBSC key.', 409);
  }
  const verified = verifyDbscProof(proof, { algorithms: options.algorithms });
  const { jti, authorization, aud } = verified.claims;
  const pending = binding?.pending;
  const now = options.nowSeconds();
  const opened = openChallenge(options.key, jti, 'registration', '', now);
  if (!pending || pending.challenge !== jti || !opened) throw stale('jti is not the challenge of this login, or it expired');
  if (pending.authorization !== authorization) throw stale('authorization is not the value this login asked for');
  if (aud !== undefined && !urlsFor(options, req, options.registrationPath).includes(aud)) {
    throw dbscError('ERR_TOKENSEC_DBSC_INVALID_PROOF', 'Invalid DBSC proof: aud is not this registration URL.', 400);
  }
  if (!(await consumeChallenge(options.challengeStore, options.storeTimeout, opened, now))) throw stale('the challenge was used before');
  const id = randomBytes(16).toString('base64url');
  const registered = { id, alg: verified.alg, jwk: verified.jwk, jkt: verified.jkt };
  await storeBinding(options, (state) => state.register(req, registered));
  answerSession(options, res, id);
}
