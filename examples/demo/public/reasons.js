// What a TokenSec error means for the person in front of the demo, by its code (README.md,
// "What an app does for each code"). The client carries the server's code (TokenSec-Error); a
// status without one falls back to ERR_TOKENSEC_HTTP_STATUS, and the demo's handshake answers
// 401 only when nobody is logged in.
const REASONS = {
  NOT_LOGGED_IN: 'Not logged in: log in first.',
  BAD_CREDENTIALS: 'Wrong user name or password.',
  ERR_TOKENSEC_DPOP_KEY_MISMATCH: 'This session is bound to another key: log in again.',
  ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED: 'This session needs a new key: log in again.',
  ERR_TOKENSEC_PAYLOAD_TOO_LARGE: 'The token is too large for the proxy in front of the server.',
  ERR_TOKENSEC_CSRF_REFUSED: 'The CSRF token was refused: reload the page.',
  ERR_TOKENSEC_SECRET_MISMATCH: 'The CSRF token was refused: reload the page.',
  ERR_TOKENSEC_NO_SECRET: 'No CSRF token yet: reload the page.',
  ERR_TOKENSEC_NETWORK: 'The server could not be reached.',
  ERR_TOKENSEC_TIMEOUT: 'The server did not answer in time.',
  ERR_TOKENSEC_STORE_UNAVAILABLE: 'The server is busy: try again in a moment.',
  ERR_TOKENSEC_INSECURE_CONTEXT: 'This page needs HTTPS (or localhost).',
  ERR_TOKENSEC_UNSUPPORTED_BROWSER: 'This browser lacks the Web Crypto it needs.',
};

/** Words for an error (a TokenSecError, or an event's `{ code, status }`), with the code for developers. */
function reasonOf(error) {
  const code = `${error.code ?? error.name}${error.status ? ` ${error.status}` : ''}`;
  const words = REASONS[error.code] ?? (error.status === 401 ? REASONS.NOT_LOGGED_IN : error.message);
  return words ? `${words} (${code})` : code;
}
