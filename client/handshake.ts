/**
 * The handshake: `TokenSec.handshake(options)` asks the server for its payload (an access token)
 * encrypted to a fresh key pair, and resolves with the decrypted string. The token lives only in
 * the caller's memory: nothing is written to storage or cookies.
 */
import { TokenSecError, type TokenSecErrorCode } from '../src/protocol/errors.js';
import { CSRF_HEADER, DEFAULT_HEADER, HEADER_NAME, joinResponse, type Algorithm } from '../src/protocol/wire.js';
import { portableBase64url } from '../src/protocol/base64url.js';
import { BIND_CLAIM, DPOP_HEADER, HANDSHAKE_CLAIM } from '../src/protocol/dpop.js';
import { isRow, KEY_AGREEMENT } from './algorithms.js';
import { createKeys, openResponse, requestHeader, subtleCrypto } from './crypto.js';
import { csrfTokenOf } from './csrf-token.js';
import { fail } from './fail.js';
import { createDpopProof, getDpopKey, madeHere, resolveUrl, rotateDpopKey, sha256, syncClock, type DpopKey } from './dpop.js';

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

const isErrorCode = (code: unknown): code is TokenSecErrorCode => typeof code === 'string' && /^ERR_TOKENSEC_\w+$/.test(code);

/**
 * The error for a non-2xx answer: the server's stable code from its `TokenSec-Error` header, else
 * from a JSON body's `code` (a CSRF middleware's EBADCSRFTOKEN becomes ERR_TOKENSEC_CSRF_REFUSED);
 * ERR_TOKENSEC_HTTP_STATUS when it named none of ours. `status` is the status; the message is the
 * body's `message` (errorHandler() writes the fix there), else `HTTP <status>`.
 */
function httpError(response: Response, body: string): TokenSecError {
  let code: unknown, message: unknown;
  try {
    ({ code, message } = JSON.parse(body));
  } catch {
    // not JSON, or JSON null
  }
  code = response.headers.get('tokensec-error') ?? code;
  if (code === 'EBADCSRFTOKEN') code = 'ERR_TOKENSEC_CSRF_REFUSED';
  const { status } = response;
  return new TokenSecError(
    isErrorCode(code) ? code : 'ERR_TOKENSEC_HTTP_STATUS',
    typeof message === 'string' ? message : 'HTTP ' + status,
    status,
  );
}

async function run(options: ClientHandshakeOptions, abort: AbortController): Promise<string> {
  const subtle = subtleCrypto();
  const { uri = '/', header = DEFAULT_HEADER, algorithm } = options;
  const method = (options.method ?? 'POST').toUpperCase();
  const url = resolveUrl(uri);
  // (header: 'x-csrf-token' is refused by the server at startup, so it is not checked here too.)
  if (!url || !HEADER_NAME.test(header) || (algorithm && !isRow(KEY_AGREEMENT, algorithm))) {
    throw fail('INVALID_OPTIONS', 'Bad uri, header or algorithm');
  }
  const csrfToken = csrfTokenOf(options);
  const secret = options.secret || csrfToken;
  if (!secret) {
    throw fail('NO_SECRET', 'No csrfToken, secret or tokensec cookie');
  }
  const dpop = options.dpop !== false;
  const keys = await createKeys(subtle, algorithm);

  /**
   * Sends the handshake until it is answered, retrying once each refusal a new attempt can cure:
   * - 409 NEW_KEY_REQUIRED (the session has no key yet, and this one was not made in this run):
   *   the key another tab stored meanwhile, else a new key, made here and so sent with `tsb`;
   * - 403 KEY_MISMATCH: the key another tab stored meanwhile, if there is one;
   * - 401 NONCE_REQUIRED or NONCE_STALE: the answer's `DPoP-Nonce` in the proof (every proof
   *   carries the latest nonce of its origin, kept by syncClock);
   * - 401 INVALID_PROOF (or REPLAYED_PROOF): a fresh proof, its `iat` by the server's clock, learnt
   *   from the answer's `Date`.
   * Anything else is no better on a second try at once: Host refused (400 BAD_HOST) never is; a
   * store restarted, full or down (503) may be later, which TokenSec.session() retries with back-off.
   */
  const exchange = async () => {
    let key: DpopKey | undefined = dpop ? await getDpopKey() : undefined;
    const retried = new Set<string>();
    for (;;) {
      const target = { header, method, path: url.pathname, jkt: key && portableBase64url.decode(key.thumbprint) };
      const value = await requestHeader(subtle, keys, secret, target);
      const headers: Record<string, string> = { ...options.headers, [header]: value };
      if (csrfToken) headers[CSRF_HEADER] = csrfToken;
      if (key) {
        // The proof commits to this handshake header, and so to the ephemeral key in it.
        const claims: Record<string, string | boolean> = {
          [HANDSHAKE_CLAIM]: await sha256(value),
        };
        // A key made in this run may be bound to a session that has none yet.
        if (madeHere.has(key.thumbprint)) claims[BIND_CLAIM] = true;
        headers[DPOP_HEADER] = await createDpopProof({ method, url, key, claims });
      }
      let response: Response;
      try {
        // fetch's own default credentials mode is 'same-origin'.
        response = await fetch(url, { method, headers, credentials: options.credentials, cache: 'no-store', signal: abort.signal });
      } catch (cause) {
        throw abort.signal.reason ?? fail('NETWORK', 'Network error or CORS (the server must allow this origin)', { cause });
      }
      syncClock(response, url.origin);
      // Read the body to its end (a large answer's ciphertext is there; one left unread is cancelled
      // when collected, which browsers log as an aborted request).
      const body = await response.text().catch(() => '');
      if (response.ok) {
        const sealed = response.headers.get(header);
        if (sealed === null) throw fail('NO_RESPONSE_HEADER', 'No response header (Access-Control-Expose-Headers)');
        return openResponse(subtle, keys, secret, target, joinResponse(sealed, body));
      }
      const error = httpError(response, body);
      const { code } = error;
      if (!key || retried.has(code)) throw error;
      retried.add(code);
      // (Matched by parts, for the size budget: 409 NEW_KEY_REQUIRED, 403 KEY_MISMATCH.)
      if (/KEY_[RM]/.test(code)) {
        const stored = await getDpopKey();
        if (stored.thumbprint !== key.thumbprint) key = stored;
        else if (/H$/.test(code))
          throw error; // KEY_MISMATCH
        else key = await rotateDpopKey(key); // a new key of the same algorithm
      } else if (!/NONCE|D_PROOF/.test(code)) throw error;
    }
  };

  // Tabs choose and bind keys one at a time: a tab that finds the session unbound makes its new
  // key only once any other tab's binding has finished, and a tab waiting here then finds the key
  // that tab bound. Without Web Locks (older browsers) only the retries above bring tabs to one key.
  const locks = globalThis.navigator?.locks;
  return dpop && locks ? locks.request('tokensec-dpop-key', { signal: abort.signal }, exchange) : exchange();
}

/**
 * Runs `run` under the timeout and the caller's signal: whichever fires first rejects the
 * handshake with its code, and the request in flight is cancelled.
 */
function guarded(options: ClientHandshakeOptions): Promise<string> {
  // `options` may come from plain JavaScript: anything but an object is a caller's mistake.
  const { timeout = 10_000, signal } = options ?? {};
  if (!(options instanceof Object) || typeof timeout !== 'number' || !(timeout > 0) || (signal && !(signal instanceof AbortSignal)))
    return Promise.reject(fail('INVALID_OPTIONS', 'Bad options, timeout or signal'));
  const abort = new AbortController();
  // (Whichever comes first: abort() on an aborted signal does nothing, the first reason stays.)
  const onAbort = () => abort.abort(fail('ABORTED', 'Aborted'));
  const timer = setTimeout(() => abort.abort(fail('TIMEOUT', 'Timed out')), timeout);
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
