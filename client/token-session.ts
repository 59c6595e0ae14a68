/**
 * The token session itself, the same in the page (`TokenSec.session()`) and in a sealed session's
 * worker: it keeps the token, refreshes it ahead of expiry, runs one handshake for any number of
 * callers, retries what is worth retrying, and signs API calls on allowed origins.
 */
import { TokenSecError } from '../src/protocol/errors.js';
import { readCookie } from './cookie.js';
import { createDpopProof, syncClock } from './dpop.js';
import { fail } from './fail.js';
import { handshake, type ClientHandshakeOptions } from './index.js';

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
export type ErrorDetail = { code: TokenSecError['code']; status?: number };

/** The events of a sealed session, by name: each a CustomEvent whose `detail` is typed here. */
export interface SealedSessionEventMap {
  /** A new token arrived; `expiresAt` in ms since the epoch. */
  token: CustomEvent<{ expiresAt: number }>;
  /** A refresh ahead of expiry starts. */
  refresh: CustomEvent<undefined>;
  /** A handshake failed for good (after its retries). */
  error: CustomEvent<ErrorDetail>;
  /** The token ran out with no replacement. */
  expired: CustomEvent<undefined>;
  /** `state` changed; a refusal carries the handshake's error code and status. */
  state: CustomEvent<{ state: SessionState; expiresAt: number } & Partial<ErrorDetail>>;
}

/** The events of an in-page session: the sealed ones, and `token` also carries the token. */
export interface SessionEventMap extends SealedSessionEventMap {
  token: CustomEvent<{ token: string; expiresAt: number }>;
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
  getToken(options: GetTokenOptions & { detailed: true }): Promise<{ token: string; expiresAt: number }>;
}

export type Detail = { token?: string; expiresAt?: number; code?: TokenSecError['code']; status?: number; state?: SessionState };

/**
 * Messages, as arrays to keep the bundle small: [kind, number, data]. Page to worker: init,
 * hidden, clear, fetch and abort (number: call id). Worker to page: fetch (the response or
 * error), event. Between tabs: clear only, never a token.
 */
export type Message = [kind: string, id?: number, data?: any]; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Network errors, timeouts and 5xx are worth another try; 4xx and broken answers are not. */
const isRetryable = ({ code, status = 0 }: TokenSecError) => /NETWORK|TIMEOUT/.test(code) || status >= 500;
/** setTimeout fires at once for delays past 2^31 - 1 ms (24.8 days). */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Milliseconds since the epoch when the token expires: OAuth's `expires_in`, else the JWT's
 * lifetime (exp - iat, counted from now, so a wrong clock in the browser does not matter), else
 * its `exp`, else `lifetime`.
 */
function expiryOf(token: string, expiresIn: unknown, lifetime: number): number {
  if (typeof expiresIn == 'number') lifetime = expiresIn;
  else
    try {
      const { exp, iat } = JSON.parse(atob((token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/')));
      if (typeof exp == 'number') return typeof iat == 'number' ? Date.now() + (exp - iat) * 1000 : exp * 1000;
    } catch {
      // not a JWT
    }
  return Date.now() + lifetime * 1000;
}

/** Pauses refreshing while the page is hidden; resumes when it is shown or the network is back. */
export function watchPage(setHidden: (hidden: boolean) => void) {
  const update = () => setHidden(document.visibilityState == 'hidden');
  document.addEventListener('visibilitychange', update);
  addEventListener('online', update);
  update();
}

/** Completes the options; throws ERR_TOKENSEC_INVALID_OPTIONS on a negative number or a bad URL. */
export function sessionOptions(options: SessionOptions) {
  try {
    const { leeway = 30, lifetime = 300, retries = 3, retryDelay = 500, timeout = 10_000, origins = [location.href], uri = '/' } = options;
    if ([leeway, lifetime, retries, retryDelay, timeout].every((n) => n >= 0))
      return {
        ...options,
        leeway,
        lifetime,
        retries,
        retryDelay,
        timeout,
        origins: origins.map((o) => new URL(o).origin),
        // Absolute, so that a sealed session's worker resolves it as the page does.
        uri: new URL(uri, location.href).href,
      };
  } catch {
    // reported below
  }
  throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'Bad session options');
}

/** The session, in the page or (sealed) in a worker. */
export function localSession(options: ReturnType<typeof sessionOptions>, sealed?: boolean) {
  const { leeway, lifetime, retries, retryDelay, timeout, origins } = options;
  const events = new EventTarget();
  // Tabs of one endpoint take turns on a Web Lock of this name and share logout on a channel of
  // it. Never a token: any script of the origin can post and listen there, or hold the lock.
  const name = `tokensec:${options.uri}`;
  const channel = globalThis.BroadcastChannel && new BroadcastChannel(name);
  /** The latest DPoP-Nonce each origin sent (RFC 9449 §8). */
  const nonces: Record<string, string> = {};
  let token: string | undefined;
  let expiresAt = 0;
  /** Expiry minus leeway, but at least half the token's remaining life away: a leeway longer than
   * the lifetime would otherwise make every token stale on arrival and refresh without pause. */
  let refreshAt = 0;
  let state: SessionState = 'none';
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: Promise<string> | undefined;
  let controller = new AbortController();
  let hidden = false;

  const emit = (type: string, detail?: Detail) => events.dispatchEvent(new CustomEvent(type, { detail }));
  /** The token, until it is time to refresh it. */
  const fresh = () => (Date.now() < refreshAt ? token : undefined);
  const setState = (next: SessionState, error?: TokenSecError) =>
    next != state && emit('state', { state: (state = next), expiresAt, code: error?.code, status: error?.status });

  function keep(value: string, expiry: number) {
    token = value;
    expiresAt = expiry;
    refreshAt = Math.max(expiry - leeway * 1000, (Date.now() + expiry) / 2);
    emit('token', sealed ? { expiresAt } : { token, expiresAt });
    setState('token');
    schedule();
  }

  function forget(share?: boolean) {
    token = pending = undefined;
    expiresAt = refreshAt = 0;
    clearTimeout(timer);
    controller.abort();
    controller = new AbortController();
    if (share) channel?.postMessage(['clear']);
    setState('none');
  }

  /**
   * Refresh at expiry minus leeway, or at once if that is past (the page was hidden); after a
   * failed refresh, wait for expiry and report it. Nothing runs while the page is hidden.
   */
  function schedule(failed?: boolean) {
    clearTimeout(timer);
    if (token === undefined || hidden) return;
    timer = setTimeout(
      () => {
        if (Date.now() >= expiresAt) {
          forget();
          emit('expired');
        } else if (Date.now() < refreshAt) schedule();
        else {
          emit('refresh');
          getToken().catch(() => schedule(true));
        }
      },
      Math.min(MAX_DELAY, (failed ? expiresAt : refreshAt) - Date.now()),
    );
  }

  async function obtain(signal: AbortSignal): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        const csrfToken = options.csrfToken ?? readCookie(options.cookie ?? 'tokensec');
        let value = await handshake({ ...options, csrfToken, signal });
        let expiresIn: unknown;
        try {
          // An OAuth-style token response: { "access_token": "...", "expires_in": 300 }
          const parsed = JSON.parse(value);
          if (typeof parsed.access_token == 'string') ({ access_token: value, expires_in: expiresIn } = parsed);
        } catch {
          // a bare token
        }
        if (!signal.aborted) keep(value, expiryOf(value, expiresIn, lifetime));
        return value;
      } catch (error) {
        if (attempt >= retries || !isRetryable(error as TokenSecError) || signal.aborted) throw error;
        // Full jitter: a random wait up to a ceiling that doubles per retry, at most 10 s.
        await new Promise((resolve) =>
          setTimeout(resolve, ((crypto.getRandomValues(new Uint8Array(1))[0] ?? 0) / 256) * Math.min(10_000, retryDelay * 2 ** attempt)),
        );
      }
    }
  }

  function getToken({ signal, cacheMode }: GetTokenOptions = {}): Promise<string> {
    // An aborted caller starts nothing.
    if (signal?.aborted) return Promise.reject(fail('ERR_TOKENSEC_ABORTED', 'Aborted'));
    const cached = () => (cacheMode == 'off' ? undefined : fresh());
    const current = cached();
    if (current === undefined && !pending) {
      const { signal: session } = controller;
      const run = async (): Promise<string> => cached() ?? obtain(session);
      const locks = globalThis.navigator?.locks;
      // One handshake at a time for every caller here and, with Web Locks, for every tab of the
      // endpoint (a first login binds one key, not two). Waiting for the lock ends with the
      // session (clear) or after `timeout`: another page may hold the lock forever.
      const wait = new AbortController();
      const stop = () => wait.abort();
      const timer = setTimeout(stop, timeout);
      session.addEventListener('abort', stop);
      const granted = () => (clearTimeout(timer), run());
      // (lib.dom types the lock's promise as the callback's promise, unflattened.)
      const shared: Promise<string> = (
        locks ? (locks.request(name, { signal: wait.signal }, granted) as unknown as Promise<string>) : granted()
      )
        .catch((error: unknown) => {
          const e =
            error instanceof TokenSecError ? error : fail(session.aborted ? 'ERR_TOKENSEC_ABORTED' : 'ERR_TOKENSEC_TIMEOUT', 'No lock');
          if (!session.aborted) {
            emit('error', e);
            if (e.status == 401 || e.status == 403) setState('refused', e);
          }
          throw e;
        })
        .finally(() => {
          if (pending === shared) pending = undefined;
        });
      pending = shared;
    }
    return current === undefined
      ? Promise.race([
          pending!,
          new Promise<never>((_, reject) => signal?.addEventListener('abort', () => reject(fail('ERR_TOKENSEC_ABORTED', 'Aborted')))),
        ])
      : Promise.resolve(current);
  }

  async function sessionFetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    const { signal } = request;
    const { origin } = new URL(request.url);
    // no-cors requests cannot carry Authorization or DPoP: the browser would drop them.
    if (!origins.includes(origin) || request.mode == 'no-cors') return fetch(request);
    const send = async (retry?: boolean): Promise<Response> => {
      // Like fetch: an aborted signal rejects with its reason, and sends nothing.
      signal.throwIfAborted();
      const accessToken: string = await getToken({ signal }).catch((error) => {
        signal.throwIfAborted();
        throw error;
      });
      const headers = new Headers(request.headers);
      if (options.dpop === false) headers.set('authorization', `Bearer ${accessToken}`);
      else {
        headers.set('authorization', `DPoP ${accessToken}`);
        headers.set('dpop', await createDpopProof({ method: request.method, url: request.url, accessToken, nonce: nonces[origin] }));
      }
      // (A Request made with init resets referrer and referrerPolicy: passed on as given.)
      const { referrer, referrerPolicy } = request;
      const response = await fetch(new Request(request.clone(), { headers, referrer, referrerPolicy })).catch((error) => {
        // Like fetch: aborted, it rejects with the signal's reason (WebKit's fetch says AbortError
        // for a Request's signal whatever the reason, e.g. AbortSignal.timeout()'s TimeoutError).
        signal.throwIfAborted();
        throw error;
      });
      // Only an answer from the origin the proof was made for (not one a redirect led to) may
      // set that origin's nonce or ask for a retry.
      const own = response.url && new URL(response.url).origin == origin;
      if (own) syncClock(response);
      const nonce = own && response.headers.get('dpop-nonce');
      if (nonce) nonces[origin] = nonce;
      const challenge = own && response.status == 401 && response.headers.get('www-authenticate');
      if (retry || !challenge) return response;
      // A challenge other than a nonce means the token was refused: drop it (unless a newer one came).
      if (!/use_dpop_nonce/.test(challenge) && token === accessToken) token = undefined;
      return send(true);
    };
    return send();
  }

  channel?.addEventListener('message', ({ data }: MessageEvent<Message>) => {
    if (Array.isArray(data) && data[0] == 'clear') forget();
  });

  return {
    events,
    getToken: ((options?: GetTokenOptions) =>
      options?.detailed
        ? getToken(options).then((value) => ({ token: value, expiresAt }))
        : getToken(options)) as TokenSecSession['getToken'],
    fetch: sessionFetch,
    clear: () => forget(true),
    state: () => state,
    expiresAt: () => expiresAt,
    setHidden(value: boolean) {
      hidden = value;
      schedule();
    },
  };
}
