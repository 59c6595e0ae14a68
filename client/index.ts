/**
 * TokenSec browser client. `TokenSec.handshake(options)` asks the server for its payload (an
 * access token) encrypted to a fresh key pair, and resolves with the decrypted string. The token
 * lives only in the caller's memory: nothing is written to storage or cookies.
 */
import { TokenSecError } from '../src/protocol/errors.js';
import { CSRF_HEADER, DEFAULT_HEADER, HEADER_NAME, type Algorithm } from '../src/protocol/wire.js';
import { createKeys, openResponse, requestHeader } from './crypto.js';

export { TokenSecError };
export type { TokenSecErrorCode } from '../src/protocol/errors.js';

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
  /** HTTP method. Default `POST`. */
  method?: string;
  /** Name of the cookie holding the CSRF token. Default `tokensec`. */
  cookie?: string;
  /** fetch credentials mode; `include` for an API on another origin. Default `same-origin`. */
  credentials?: RequestCredentials;
  /** Force a key agreement algorithm; by default X25519, falling back to P-256. */
  algorithm?: Algorithm;
}

export type HandshakeCallback = (error: TokenSecError | null, payload?: string) => void;

// Messages are terse to keep the bundle under 2 KiB gzipped; README.md explains every code.
const fail = (code: TokenSecError['code'], message: string, status?: number) => new TokenSecError(code, message, status);

function readCookie(name: string): string | undefined {
  const value = `; ${globalThis.document?.cookie}`.split(`; ${name}=`)[1]?.split(';')[0];
  try {
    return value && decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

async function run(options: ClientHandshakeOptions): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw fail('ERR_TOKENSEC_INSECURE_CONTEXT', 'Needs HTTPS or localhost (no crypto.subtle)');
  }
  const { uri = '/', method = 'POST', header = DEFAULT_HEADER, algorithm } = options;
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
  const target = { header, method, path: url.pathname };

  const keys = await createKeys(subtle, algorithm);
  const headers: Record<string, string> = { ...options.headers, [header]: await requestHeader(subtle, keys, secret, target) };
  if (csrfToken) headers[CSRF_HEADER] = csrfToken;

  let response: Response;
  try {
    // fetch's own default credentials mode is 'same-origin'.
    response = await fetch(url, { method, headers, credentials: options.credentials, cache: 'no-store' });
  } catch (cause) {
    throw new TokenSecError('ERR_TOKENSEC_NETWORK', 'Request failed', undefined, { cause });
  }
  if (!response.ok) throw fail('ERR_TOKENSEC_HTTP_STATUS', 'HTTP ' + response.status, response.status);
  const value = response.headers.get(header);
  if (value === null) {
    throw fail('ERR_TOKENSEC_NO_RESPONSE_HEADER', 'No response header (CORS: Access-Control-Expose-Headers)');
  }
  return openResponse(subtle, keys, secret, target, value);
}

/** Runs one handshake. Resolves with the payload, or rejects with a TokenSecError. */
export function handshake(options?: ClientHandshakeOptions): Promise<string>;
/** Callback form: `callback(error, payload)`. */
export function handshake(options: ClientHandshakeOptions | undefined, callback: HandshakeCallback): void;
export function handshake(options: ClientHandshakeOptions = {}, callback?: HandshakeCallback): Promise<string> | void {
  const result = run(options);
  if (!callback) return result;
  result.then(
    (payload) => callback(null, payload),
    (error: TokenSecError) => callback(error),
  );
}
