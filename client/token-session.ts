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
  /** Origins `session.fetch` attaches the token to. Default: the page's own origin only. */
  origins?: string[];
  /**
   * Sealed mode, in the sealed bundle only (tokensec-sealed.js): the URL of that classic script,
   * which the session's dedicated Worker runs. Default: the URL the page loaded it from.
   */
  sealed?: string | URL;
}

/**
 * A token session. Events (CustomEvent, data in `detail`): `token` (`{ expiresAt }` in ms, plus
 * `token` unless sealed), `refresh` (a refresh ahead of expiry starts), `error` (`{ code, status }`:
 * a handshake failed for good), `expired` (the token ran out with no replacement).
 *
 * @example
 * ```js
 * session.addEventListener('token', (e) => showExpiry(new Date(e.detail.expiresAt)));
 * logoutButton.onclick = () => { session.clear(); TokenSec.deleteDpopKey(); };
 * ```
 */
export interface TokenSecSession extends EventTarget {
  /** The cached token, or a new one from one shared handshake. Absent when sealed. */
  getToken?(options?: { signal?: AbortSignal }): Promise<string>;
  /** fetch() with `Authorization: DPoP <token>` and a proof on allowed origins; after a 401 challenge, one retry. */
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
  /** Forgets the token in this tab and the others, cancels a handshake in flight, stops refreshing (logout). */
  clear(): void;
}

export type Detail = { token?: string; expiresAt?: number; code?: TokenSecError['code']; status?: number };

/**
 * Messages, as arrays to keep the bundle small: [kind, number, data]. Page to worker: init,
 * hidden, clear, fetch (number: call id). Worker to page: fetch (the response or error), event.
 * Between tabs: token (number: expiry; not in sealed mode) and clear.
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
    const { leeway = 30, lifetime = 300, retries = 3, retryDelay = 500, origins = [location.href], uri = '/' } = options;
    if ([leeway, lifetime, retries, retryDelay].every((n) => n >= 0))
      return {
        ...options,
        leeway,
        lifetime,
        retries,
        retryDelay,
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
  const { leeway, lifetime, retries, retryDelay, origins } = options;
  const events = new EventTarget();
  // Tabs share this endpoint's tokens on this channel (the lock has the same name); sealed
  // sessions share only logout, since any script of the origin may listen on a channel.
  const name = `tokensec:${options.uri}`;
  const channel = globalThis.BroadcastChannel && new BroadcastChannel(name);
  /** The latest DPoP-Nonce each origin sent (RFC 9449 §8). */
  const nonces: Record<string, string> = {};
  let token: string | undefined;
  let expiresAt = 0;
  /** Expiry minus leeway, but at least half the token's remaining life away: a leeway longer than
   * the lifetime would otherwise make every token stale on arrival and refresh without pause. */
  let refreshAt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: Promise<string> | undefined;
  let controller = new AbortController();
  let hidden = false;

  const emit = (type: string, detail?: Detail) => events.dispatchEvent(new CustomEvent(type, { detail }));
  /** The token, until it is time to refresh it. */
  const fresh = () => (Date.now() < refreshAt ? token : undefined);

  function keep(value: string, expiry: number, share?: boolean) {
    token = value;
    expiresAt = expiry;
    refreshAt = Math.max(expiry - leeway * 1000, (Date.now() + expiry) / 2);
    if (share && !sealed) channel?.postMessage(['token', expiry, value]);
    emit('token', sealed ? { expiresAt } : { token, expiresAt });
    schedule();
  }

  function forget(share?: boolean) {
    token = pending = undefined;
    expiresAt = refreshAt = 0;
    clearTimeout(timer);
    controller.abort();
    controller = new AbortController();
    if (share) channel?.postMessage(['clear']);
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
        if (!signal.aborted) keep(value, expiryOf(value, expiresIn, lifetime), true);
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

  function getToken({ signal }: { signal?: AbortSignal } = {}): Promise<string> {
    const current = fresh();
    if (current !== undefined) return Promise.resolve(current);
    if (!pending) {
      const { signal: session } = controller;
      const run = async (): Promise<string> => fresh() ?? obtain(session);
      const locks = globalThis.navigator?.locks;
      // One handshake for every caller here and, with Web Locks, for every tab: the lock holder
      // shares its token on the channel before it lets go, so the next holder finds it fresh.
      const shared: Promise<string> = (
        locks
          ? (async () =>
              await locks.request(name, { signal: session }, async () => {
                // The previous holder's token may still be on its way through the channel.
                await new Promise((resolve) => setTimeout(resolve, 20));
                return run();
              }))()
          : run()
      )
        .catch((error: unknown) => {
          const e = error instanceof TokenSecError ? error : fail('ERR_TOKENSEC_ABORTED', 'Aborted');
          if (!session.aborted) emit('error', e);
          throw e;
        })
        .finally(() => {
          if (pending === shared) pending = undefined;
        });
      pending = shared;
    }
    return signal
      ? Promise.race([
          pending,
          new Promise<never>((_, reject) => {
            const abort = () => reject(fail('ERR_TOKENSEC_ABORTED', 'Aborted'));
            signal.aborted ? abort() : signal.addEventListener('abort', abort);
          }),
        ])
      : pending;
  }

  async function sessionFetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    const { origin } = new URL(request.url);
    if (!origins.includes(origin)) return fetch(request);
    const send = async (retry?: string) => {
      const accessToken = await getToken();
      // A challenge other than a nonce means the token was refused: drop it (unless a newer one came).
      if (retry && !/use_dpop_nonce/.test(retry) && token === accessToken) {
        token = undefined;
        return send();
      }
      const headers = new Headers(request.headers);
      if (options.dpop === false) headers.set('authorization', `Bearer ${accessToken}`);
      else {
        headers.set('authorization', `DPoP ${accessToken}`);
        headers.set('dpop', await createDpopProof({ method: request.method, url: request.url, accessToken, nonce: nonces[origin] }));
      }
      const response = await fetch(new Request(request.clone(), { headers }));
      syncClock(response);
      const nonce = response.headers.get('dpop-nonce');
      if (nonce) nonces[origin] = nonce;
      return response;
    };
    const response = await send();
    const challenge = response.headers.get('www-authenticate');
    return response.status == 401 && challenge ? send(challenge) : response;
  }

  channel?.addEventListener('message', ({ data }: MessageEvent<Message>) => {
    const [kind, until = 0, shared] = Array.isArray(data) ? data : [];
    if (kind == 'clear') forget();
    else if (kind == 'token' && !sealed && until > expiresAt) keep(String(shared), until);
  });

  return {
    events,
    getToken,
    fetch: sessionFetch,
    clear: () => forget(true),
    setHidden(value: boolean) {
      hidden = value;
      schedule();
    },
  };
}
