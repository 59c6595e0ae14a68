/**
 * The session bundle's entry (`tokensec/session`, dist/browser/tokensec-session.js): everything
 * of the handshake bundle plus `TokenSec.session()`, which keeps the token in the page. Sealed
 * mode, which keeps it in a Worker, is the sealed bundle (client/sealed.ts).
 */
import { fail } from './fail.js';
import { localSession, sessionOptions, watchPage, type SessionOptions, type TokenSecSession } from './token-session.js';

export * from './index.js';
export type {
  ErrorDetail,
  GetTokenOptions,
  SessionBase,
  SessionEventMap,
  SessionOptions,
  SessionState,
  TokenSecSession,
} from './token-session.js';

/**
 * Starts a token session in the page: `getToken()`, `fetch()`, `clear()`, `state`, `expiresAt` and events.
 *
 * @example
 * ```js
 * const session = TokenSec.session({ uri: '/token' });
 * const me = await (await session.fetch('/api/me')).json();
 * ```
 */
export function session(options: SessionOptions = {}): TokenSecSession {
  const checked = sessionOptions(options);
  // Silently running unsealed would keep the token where the caller asked it not to be.
  if (options.sealed) throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'sealed needs tokensec-sealed.js');
  const local = localSession(checked);
  watchPage(local.setHidden);
  return Object.defineProperties(Object.assign(local.events, { getToken: local.getToken, fetch: local.fetch, clear: local.clear }), {
    state: { get: local.state },
    expiresAt: { get: local.expiresAt },
  }) as TokenSecSession;
}
