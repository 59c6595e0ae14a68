/**
 * TokenSec browser client. `TokenSec.handshake(options)` asks the server for its payload (an
 * access token) encrypted to a fresh key pair, and resolves with the decrypted string. The token
 * lives only in the caller's memory: nothing is written to storage or cookies.
 */
import { TokenSecError } from '../src/errors.js';
import { CSRF_HEADER, DEFAULT_HEADER, HEADER_NAME, type Algorithm } from '../src/wire.js';
import { createKeys, openResponse, requestHeader } from './protocol.js';

export { TokenSecError };
export type { TokenSecErrorCode } from '../src/errors.js';

export interface HandshakeOptions {
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

const fail = (code: TokenSecError['code'], message: string, status?: number) => new TokenSecError(code, message, status);

function readCookie(name: string): string | undefined {
  if (typeof document === 'undefined') return undefined;
  for (const pair of document.cookie.split(';')) {
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(pair.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

async function run(options: HandshakeOptions): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw fail(
      'ERR_TOKENSEC_INSECURE_CONTEXT',
      'TokenSec needs Web Crypto (crypto.subtle), which browsers only offer in a secure context: serve the page over HTTPS, or from localhost or 127.0.0.1 during development.',
    );
  }
  const { uri = '/', method = 'POST', header = DEFAULT_HEADER, algorithm } = options;
  if (!HEADER_NAME.test(header) || header.toLowerCase() === CSRF_HEADER) {
    throw fail('ERR_TOKENSEC_INVALID_OPTIONS', `TokenSec option "header" must be an HTTP header name other than ${CSRF_HEADER}.`);
  }
  if (algorithm !== undefined && algorithm !== 'x25519' && algorithm !== 'p256') {
    throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'TokenSec option "algorithm" must be "x25519" or "p256".');
  }
  const csrfToken = options.csrfToken ?? readCookie(options.cookie ?? 'tokensec');
  const secret = options.secret || csrfToken;
  if (!secret) {
    throw fail(
      'ERR_TOKENSEC_NO_SECRET',
      'TokenSec has no secret: pass csrfToken (or secret), or mount tokenSec.initialize({ cookie: true }) after your CSRF middleware so the page gets the tokensec cookie.',
    );
  }
  let url: URL;
  try {
    url = new URL(uri, globalThis.location?.href);
  } catch {
    throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'TokenSec option "uri" is not a valid URL.');
  }
  const target = { header, method, path: url.pathname };

  const keys = await createKeys(subtle, algorithm);
  const headers: Record<string, string> = { ...options.headers, [header]: await requestHeader(subtle, keys, secret, target) };
  if (csrfToken) headers[CSRF_HEADER] = csrfToken;

  let response: Response;
  try {
    response = await fetch(url, { method: method.toUpperCase(), headers, credentials: options.credentials ?? 'same-origin', cache: 'no-store' });
  } catch (cause) {
    throw new TokenSecError('ERR_TOKENSEC_NETWORK', 'The TokenSec handshake request failed (network error, or refused by CORS).', undefined, { cause });
  }
  // The body, if the route sent one, is not ours to read.
  response.body?.cancel().catch(() => {});
  if (!response.ok) throw fail('ERR_TOKENSEC_HTTP_STATUS', `The TokenSec handshake was answered with HTTP ${response.status}.`, response.status);
  const value = response.headers.get(header);
  if (value === null) {
    throw fail(
      'ERR_TOKENSEC_NO_RESPONSE_HEADER',
      `The response has no ${header} header: the server sent no payload, the handshake middleware is not on this route, or (cross-origin) the header is not listed in Access-Control-Expose-Headers.`,
    );
  }
  return openResponse(subtle, keys, secret, target, value);
}

/** Runs one handshake. Resolves with the payload, or rejects with a TokenSecError. */
export function handshake(options?: HandshakeOptions): Promise<string>;
/** Callback form: `callback(error, payload)`. */
export function handshake(options: HandshakeOptions | undefined, callback: HandshakeCallback): void;
export function handshake(options: HandshakeOptions = {}, callback?: HandshakeCallback): Promise<string> | void {
  const result = run(options);
  if (!callback) return result;
  result.then(
    (payload) => callback(null, payload),
    (error: TokenSecError) => callback(error),
  );
}
