/**
 * The token session's public types, shared by the in-page and the sealed session: options,
 * state, events and the session objects.
 */
import type { TokenSecError } from '../../src/protocol/errors.js';
import type { ClientHandshakeOptions } from '../handshake.js';

/**
 * Options of `TokenSec.session()`: the handshake's options, and how the session keeps the token.
 *
 * @example
 * ```js
 * const session = TokenSec.session({ uri: '/token', leeway: 30, origins: [location.origin, 'https://api.example'] });
 * const response = await session.fetch('/api/me');
 * ```
 */
export interface SessionOptions extends Omit<ClientHandshakeOptions, 'signal'> {
  /** Seconds before expiry at which the token is refreshed and no longer handed out. Default 30. */
  leeway?: number;
  /** Seconds a token lives when nothing says otherwise (no `expires_in` beside it, no JWT `exp` in it). Default 300. */
  lifetime?: number;
  /** Retries after a network error, a timeout or a 5xx, never after a 4xx. Default 3. */
  retries?: number;
  /** Milliseconds: the first retry waits up to this long, each next one up to twice as long (random, at most 10 s). Default 500. */
  retryDelay?: number;
  /** Milliseconds each handshake, and each wait for the tabs' Web Lock, may take before ERR_TOKENSEC_TIMEOUT. Default 10000. */
  timeout?: number;
  /** Origins `session.fetch` attaches the token to. Default: the page's own origin only. */
  origins?: string[];
  /**
   * Sealed mode, in the sealed bundle only (tokensec-sealed.js): the URL of that classic script,
   * which the session's dedicated Worker runs. Default: the URL the page loaded it from.
   */
  sealed?: string | URL;
}

/** What the handshake said last: `'token'` (a token is kept), `'none'` (none yet, or cleared or expired), `'refused'` (a 401 or 403). */
export type SessionState = 'none' | 'token' | 'refused';

/** An error's code and HTTP status, as events carry them (never a token). */
export type ErrorDetail = {
  /** The failure's stable code, as on TokenSecError. */
  code: TokenSecError['code'];
  /** The HTTP status received, when the server answered. */
  status?: number;
};

/** The events of a sealed session, by name: each a CustomEvent whose `detail` is typed here. */
export interface SealedSessionEventMap {
  /** A new token arrived; `expiresAt` in ms since the epoch. */
  token: CustomEvent<{
    /** When the token expires, in ms since the epoch. */
    expiresAt: number;
  }>;
  /** A refresh ahead of expiry starts. */
  refresh: CustomEvent<undefined>;
  /** A handshake failed for good (after its retries). */
  error: CustomEvent<ErrorDetail>;
  /** The token ran out with no replacement. */
  expired: CustomEvent<undefined>;
  /** `state` changed; a refusal carries the handshake's error code and status. */
  state: CustomEvent<
    {
      /** The session's state now. */
      state: SessionState;
      /** When the current token expires, in ms since the epoch (0 without one). */
      expiresAt: number;
    } & Partial<ErrorDetail>
  >;
}

/** The events of an in-page session: the sealed ones, and `token` also carries the token. */
export interface SessionEventMap extends SealedSessionEventMap {
  token: CustomEvent<{
    /** The new access token. */
    token: string;
    /** When it expires, in ms since the epoch. */
    expiresAt: number;
  }>;
}

// EventTarget's own parameter types: the DOM lib names them (AddEventListenerOptions …), Node's
// types do not, and these declarations compile without the DOM lib.
type AddListener = EventTarget['addEventListener'];
type RemoveListener = EventTarget['removeEventListener'];

/** What every token session has, with its events typed by `Events`. */
export interface SessionBase<Events> extends EventTarget {
  /** fetch() with `Authorization: DPoP <token>` and a proof on allowed origins; after a 401 challenge from that origin, one retry. */
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
  /** Forgets the token in this tab and the others, cancels a handshake in flight, stops refreshing (logout). */
  clear(): void;
  /** What the handshake said last; a `state` event follows each change. */
  readonly state: SessionState;
  /** When the current token expires, in ms since the epoch; 0 without one. */
  readonly expiresAt: number;
  addEventListener<K extends keyof Events>(type: K, listener: (event: Events[K]) => void, options?: Parameters<AddListener>[2]): void;
  addEventListener(type: string, listener: Parameters<AddListener>[1], options?: Parameters<AddListener>[2]): void;
  removeEventListener<K extends keyof Events>(type: K, listener: (event: Events[K]) => void, options?: Parameters<RemoveListener>[2]): void;
  removeEventListener(type: string, listener: Parameters<RemoveListener>[1], options?: Parameters<RemoveListener>[2]): void;
}

/** Options of `getToken()`. */
export interface GetTokenOptions {
  /** Rejects this caller with ERR_TOKENSEC_ABORTED; the shared handshake goes on for the others. */
  signal?: AbortSignal;
  /** `'off'`: skip the cached token and run a handshake (one already in flight is shared). Default `'on'`. */
  cacheMode?: 'on' | 'off';
  /** true: resolve with `{ token, expiresAt }` instead of the token. */
  detailed?: boolean;
}

/**
 * A sealed session (tokensec-sealed.js): the token stays in its worker, so there is no `getToken()`.
 *
 * @example
 * ```js
 * session.addEventListener('state', (e) => render(e.detail.state));
 * ```
 */
export type SealedSession = SessionBase<SealedSessionEventMap>;

/**
 * An in-page token session (tokensec-session.js). Events (CustomEvent, typed `detail`): `token`
 * (`{ token, expiresAt }`), `refresh`, `error` (`{ code, status }`), `expired`, `state`
 * (`{ state, expiresAt, code?, status? }`).
 *
 * @example
 * ```js
 * session.addEventListener('token', (e) => showExpiry(new Date(e.detail.expiresAt)));
 * logoutButton.onclick = () => { session.clear(); TokenSec.deleteDpopKey(); };
 * ```
 */
export interface TokenSecSession extends SessionBase<SessionEventMap> {
  /** The cached token, or a new one from one shared handshake. */
  getToken(options?: GetTokenOptions & { detailed?: false }): Promise<string>;
  /** The token with its expiry (ms since the epoch). */
  getToken(options: GetTokenOptions & { detailed: true }): Promise<{
    /** The access token. */
    token: string;
    /** When it expires, in ms since the epoch. */
    expiresAt: number;
  }>;
}
