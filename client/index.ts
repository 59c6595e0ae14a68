/**
 * TokenSec browser client. `TokenSec.handshake(options)` asks the server for its payload (an
 * access token) encrypted to a fresh key pair, and resolves with the decrypted string. The token
 * lives only in the caller's memory: nothing is written to storage or cookies.
 */
import { TokenSecError } from '../src/protocol/errors.js';
import { CSRF_HEADER, DEFAULT_HEADER, HEADER_NAME, joinResponse, type Algorithm } from '../src/protocol/wire.js';
import { portableBase64url } from '../src/protocol/base64url.js';
import { utf8 } from '../src/protocol/context.js';
import { DPOP_HEADER, HANDSHAKE_CLAIM } from '../src/protocol/dpop.js';
import { createKeys, openResponse, requestHeader, subtleCrypto } from './crypto.js';
import { readCookie } from './cookie.js';
import { fail } from './fail.js';
import { createDpopProof, getDpopKey } from './dpop.js';

export { TokenSecError };
export { createDpopProof, deleteDpopKey, getDpopKey, rotateDpopKey } from './dpop.js';
export type { ClientDpopAlgorithm, DpopKey, DpopKeyOptions, DpopProofInput, WebCryptoKey } from './dpop.js';
export type { TokenSecErrorCode } from '../src/protocol/errors.js';

/**
 * Options of the browser's `TokenSec.handshake()`.
 *
 * @example
 * ```js
 * const token = await TokenSec.handshake({ uri: '/token', timeout: 5000 });
 * ```
 */
export interface ClientHandshakeOptions {
  /** Where to send the handshake. Default `/`. */
  uri?: string;
  /** CSRF token to send in `x-csrf-token`. Default: read from the `tokensec` cookie set by `initialize`. */
  csrfToken?: string;
  /** Secret the server expects (its `secret` option). Default: the CSRF token. */
  secret?: string;
  /** Accepted for compatibility with TokenSec 0.x; unused: keys come from the CSPRNG, so no salt is needed. */
  salt?: string;
  /** Handshake header name; must match the server's. Default `x-tokensec-handshake`. */
  header?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** HTTP method, upper-cased before use. Default `POST`; the server refuses GET, HEAD and OPTIONS by default. */
  method?: string;
  /** Name of the cookie holding the CSRF token. Default `tokensec`. */
  cookie?: string;
  /** fetch credentials mode; `include` for an API on another origin. Default `same-origin`. */
  credentials?: 'omit' | 'same-origin' | 'include';
  /** Force a key agreement algorithm; by default X25519, falling back to P-256. */
  algorithm?: Algorithm;
  /** Milliseconds before the handshake fails with ERR_TOKENSEC_TIMEOUT. Default 10000. */
  timeout?: number;
  /** Cancels the handshake: it then fails with ERR_TOKENSEC_ABORTED. */
  signal?: AbortSignal;
  /**
   * Send a DPoP proof made with the page's key (`getDpopKey()`), so the server can bind the
   * token to it. Default true; false only for a server whose `dpop.required` is false.
   */
  dpop?: boolean;
}

/**
 * The callback of `handshake(options, callback)`.
 *
 * @example
 * ```js
 * TokenSec.handshake({ uri: '/token' }, (error, token) => (error ? showError(error.code) : useToken(token)));
 * ```
 */
export type HandshakeCallback = (error: TokenSecError | null, payload?: string) => void;

async function run(options: ClientHandshakeOptions, abort: AbortController): Promise<string> {
  const subtle = subtleCrypto();
  const { uri = '/', header = DEFAULT_HEADER, algorithm } = options;
  const method = (options.method ?? 'POST').toUpperCase();
  let url: URL | undefined;
  try {
    url = new URL(uri, globalThis.location?.href);
  } catch {
    // reported below
  }
  // (header: 'x-csrf-token' is refused by the server at startup, so it is not checked here too.)
  if (!url || !HEADER_NAME.test(header) || (algorithm && algorithm !== 'x25519' && algorithm !== 'p256')) {
    throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'Bad uri, header or algorithm');
  }
  const csrfToken = options.csrfToken ?? readCookie(options.cookie ?? 'tokensec');
  const secret = options.secret || csrfToken;
  if (!secret) {
    throw fail('ERR_TOKENSEC_NO_SECRET', 'No csrfToken, secret or tokensec cookie');
  }
  const dpopKey = options.dpop === false ? undefined : await getDpopKey();
  const target = { header, method, path: url.pathname, jkt: dpopKey && portableBase64url.decode(dpopKey.thumbprint) };

  const keys = await createKeys(subtle, algorithm);
  const value = await requestHeader(subtle, keys, secret, target);
  const headers: Record<string, string> = { ...options.headers, [header]: value };
  if (csrfToken) headers[CSRF_HEADER] = csrfToken;
  if (dpopKey) {
    // The proof commits to this handshake header, and so to the ephemeral key in it.
    const tsh = portableBase64url.encode(new Uint8Array(await subtle.digest('SHA-256', utf8(value))));
    headers[DPOP_HEADER] = await createDpopProof({ method, url, key: dpopKey, claims: { [HANDSHAKE_CLAIM]: tsh } });
  }

  let response: Response;
  try {
    // fetch's own default credentials mode is 'same-origin'.
    response = await fetch(url, { method, headers, credentials: options.credentials, cache: 'no-store', signal: abort.signal });
  } catch (cause) {
    throw abort.signal.reason ?? new TokenSecError('ERR_TOKENSEC_NETWORK', 'Request failed', undefined, { cause });
  }
  // Read the body to its end (a large answer's ciphertext is there; one left unread is cancelled
  // when collected, which browsers log as an aborted request).
  const body = await response.text().catch(() => '');
  if (!response.ok) throw fail('ERR_TOKENSEC_HTTP_STATUS', 'HTTP ' + response.status, response.status);
  const sealed = response.headers.get(header);
  if (sealed === null) {
    throw fail('ERR_TOKENSEC_NO_RESPONSE_HEADER', 'No response header (CORS: Access-Control-Expose-Headers)');
  }
  return openResponse(subtle, keys, secret, target, joinResponse(sealed, body));
}

/**
 * Runs `run` under the timeout and the caller's signal: whichever fires first rejects the
 * handshake with its code, and the request in flight is cancelled.
 */
function guarded(options: ClientHandshakeOptions): Promise<string> {
  // `options` may come from plain JavaScript: anything but an object is a caller's mistake.
  if (typeof options !== 'object' || options === null)
    return Promise.reject(fail('ERR_TOKENSEC_INVALID_OPTIONS', 'Options must be an object'));
  const { timeout = 10_000, signal } = options;
  if (typeof timeout !== 'number' || !(timeout > 0) || (signal && !(signal instanceof AbortSignal)))
    return Promise.reject(fail('ERR_TOKENSEC_INVALID_OPTIONS', 'Bad timeout or signal'));
  const abort = new AbortController();
  const stop = (error: TokenSecError) => abort.signal.aborted || abort.abort(error);
  const onAbort = () => stop(fail('ERR_TOKENSEC_ABORTED', 'Aborted'));
  const timer = setTimeout(() => stop(fail('ERR_TOKENSEC_TIMEOUT', 'Timed out')), timeout);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort);
  const cancelled = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(abort.signal.reason)));
  return Promise.race([run(options, abort), cancelled]).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  });
}

/**
 * Runs one handshake. Resolves with the payload, or rejects with a TokenSecError.
 *
 * @example
 * ```js
 * // Classic script: <script src="/tokensec.js"></script>
 * const token = await TokenSec.handshake({ uri: '/token' });
 * // ES module
 * import { handshake } from 'tokensec/client';
 * const token2 = await handshake({ uri: '/token', signal: AbortSignal.timeout(5000) });
 * ```
 */
export function handshake(options?: ClientHandshakeOptions): Promise<string>;
/** Callback form: `callback(error, payload)`. */
export function handshake(options: ClientHandshakeOptions | undefined, callback: HandshakeCallback): void;
export function handshake(options: ClientHandshakeOptions = {}, callback?: HandshakeCallback): Promise<string> | void {
  const result = guarded(options);
  if (!callback) return result;
  result.then(
    (payload) => callback(null, payload),
    (error: TokenSecError) => callback(error),
  );
}
