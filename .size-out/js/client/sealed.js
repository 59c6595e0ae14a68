/**
 * The sealed bundle's entry (`tokensec/sealed`, dist/browser/tokensec-sealed.js), one classic
 * script in two roles: in a page, `TokenSec.session()` starts a dedicated Worker from this same
 * script (client/session/sealed-page.ts); run as that Worker, the script serves the session
 * (client/session/sealed-worker.ts, which starts itself only there). Only re-exports, and the
 * import of the worker's side.
 */
export * from './index.js';
export { session } from './session/sealed-page.js';
import './session/sealed-worker.js';
