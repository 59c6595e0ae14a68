/**
 * The session bundle's entry (`tokensec/session`, dist/browser/tokensec-session.js): everything
 * of the handshake bundle plus `TokenSec.session()`, which keeps the token in the page. Only
 * re-exports: the session is in client/session/.
 */
export * from './index.js';
export { session } from './session/in-page.js';
