/**
 * The token session itself, the same in the page (`TokenSec.session()`) and in a sealed session's
 * worker: it keeps the token, refreshes it ahead of expiry, runs one handshake for any number of
 * callers, retries what is worth retrying, and signs API calls on allowed origins. Its state is
 * private (#fields); the page and the worker reach it through its public methods only.
 */
import { TokenSecError } from '../../src/protocol/errors.js';
import { csrfTokenOf } from '../csrf-token.js';
import { createDpopProof, syncClock } from '../dpop.js';
import { fail } from '../fail.js';
import { handshake } from '../handshake.js';
import type { Detail, TabMessage } from './messages.js';
import type { SessionSettings } from './options.js';
import type { GetTokenOptions, SessionState } from './types.js';

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
  if (typeof expiresIn === 'number') lifetime = expiresIn;
  else {
    try {
      const { exp, iat } = JSON.parse(atob((token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/')));
      if (typeof exp === 'number') return typeof iat === 'number' ? Date.now() + (exp - iat) * 1000 : exp * 1000;
    } catch {
      // not a JWT
    }
  }
  return Date.now() + lifetime * 1000;
}

/** Full jitter: a random wait up to a ceiling that doubles per retry, at most 10 s. */
const backOff = (retryDelay: number, attempt: number) =>
  new Promise((resolve) =>
    setTimeout(resolve, ((crypto.getRandomValues(new Uint8Array(1))[0] ?? 0) / 256) * Math.min(10_000, retryDelay * 2 ** attempt)),
  );

/** The session, in the page or (sealed) in a worker. */
export class TokenSession {
  /** The session's events (the in-page session object is this EventTarget). */
  readonly events = new EventTarget();
  readonly #settings: SessionSettings;
  /** The CSRF token for the next handshake. */
  readonly #csrfToken: () => string | undefined;
  /**
   * Tabs of one endpoint take turns on a Web Lock of this name and share logout on a channel of
   * it. Never a token: any script of the origin can post and listen there, or hold the lock.
   */
  readonly #name: string;
  readonly #channel: BroadcastChannel | undefined;
  #token: string | undefined;
  #expiresAt = 0;
  /** Expiry minus leeway, but at least half the token's remaining life away: a leeway longer than
   * the lifetime would otherwise make every token stale on arrival and refresh without pause. */
  #refreshAt = 0;
  #state: SessionState = 'none';
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The handshake every caller shares, while one runs. */
  #pending: Promise<string> | undefined;
  /** Aborted by clear(): ends the handshake in flight and any wait for the lock. */
  #controller = new AbortController();
  #hidden = false;

  /**
   * `csrfToken`: where each handshake's CSRF token comes from; by default the option, else the
   * cookie. A sealed session's worker, which has no cookies, passes the one the page sent last.
   */
  constructor(settings: SessionSettings, csrfToken = () => csrfTokenOf(settings)) {
    this.#settings = settings;
    this.#csrfToken = csrfToken;
    this.#name = `tokensec:${settings.uri}`;
    this.#channel = globalThis.BroadcastChannel && new BroadcastChannel(this.#name);
    this.#channel?.addEventListener('message', ({ data }: MessageEvent<TabMessage | unknown>) => {
      if (Array.isArray(data) && data[0] === 'clear') this.#forget();
    });
  }

  /** What the handshake said last. */
  get state(): SessionState {
    return this.#state;
  }

  /** When the current token expires, in ms since the epoch; 0 without one. */
  get expiresAt(): number {
    return this.#expiresAt;
  }

  /** Pauses refreshing while the page is hidden. */
  setHidden(hidden: boolean): void {
    this.#hidden = hidden;
    this.#schedule();
  }

  /** Forgets the token here and in the other tabs (logout). */
  clear(): void {
    this.#forget(true);
  }

  /** The cached token, or a new one from the one shared handshake. */
  getToken({ signal, cacheMode }: GetTokenOptions = {}): Promise<string> {
    // An aborted caller starts nothing.
    if (signal?.aborted) return Promise.reject(fail('ABORTED', 'Aborted'));
    const cached = () => (cacheMode === 'off' ? undefined : this.#fresh());
    const current = cached();
    if (current !== undefined) return Promise.resolve(current);
    this.#pending ??= this.#share(cached);
    return Promise.race([
      this.#pending,
      new Promise<never>((_, reject) => signal?.addEventListener('abort', () => reject(fail('ABORTED', 'Aborted')))),
    ]);
  }

  /** fetch() with the token and a DPoP proof on allowed origins; after a 401 challenge from that origin, one retry. */
  async fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    const { origin } = new URL(request.url);
    // no-cors requests cannot carry Authorization or DPoP: the browser would drop them.
    if (!this.#settings.origins.includes(origin) || request.mode === 'no-cors') return fetch(request);
    return this.#send(request, origin, false);
  }

  #emit(type: string, detail?: Detail): void {
    this.events.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** The token, until it is time to refresh it. */
  #fresh(): string | undefined {
    return Date.now() < this.#refreshAt ? this.#token : undefined;
  }

  #setState(next: SessionState, error?: TokenSecError): void {
    if (next === this.#state) return;
    this.#state = next;
    this.#emit('state', { state: next, expiresAt: this.#expiresAt, code: error?.code, status: error?.status });
  }

  #keep(token: string, expiresAt: number): void {
    this.#token = token;
    this.#expiresAt = expiresAt;
    this.#refreshAt = Math.max(expiresAt - this.#settings.leeway * 1000, (Date.now() + expiresAt) / 2);
    // (A sealed session's worker passes on every event's detail but the token: see sealed-worker.ts.)
    this.#emit('token', { token, expiresAt });
    this.#setState('token');
    this.#schedule();
  }

  #forget(share?: boolean): void {
    this.#token = this.#pending = undefined;
    this.#expiresAt = this.#refreshAt = 0;
    clearTimeout(this.#timer);
    this.#controller.abort();
    this.#controller = new AbortController();
    if (share) this.#channel?.postMessage(['clear'] satisfies TabMessage);
    this.#setState('none');
  }

  /**
   * Refresh at expiry minus leeway, or at once if that is past (the page was hidden); after a
   * failed refresh, wait for expiry and report it. Nothing runs while the page is hidden.
   */
  #schedule(failed?: boolean): void {
    clearTimeout(this.#timer);
    if (this.#token === undefined || this.#hidden) return;
    const at = failed ? this.#expiresAt : this.#refreshAt;
    this.#timer = setTimeout(() => this.#due(), Math.min(MAX_DELAY, at - Date.now()));
  }

  /** The timer of #schedule: the token has expired, or it is time to refresh it. */
  #due(): void {
    if (Date.now() >= this.#expiresAt) {
      this.#forget();
      this.#emit('expired');
    } else if (Date.now() < this.#refreshAt) this.#schedule();
    else {
      this.#emit('refresh');
      this.getToken().catch(() => this.#schedule(true));
    }
  }

  /**
   * Starts the handshake every caller here shares and, with Web Locks, every tab of the endpoint
   * (a first login binds one key, not two). Waiting for the lock ends with the session (clear) or
   * after `timeout`: another page may hold the lock forever.
   */
  #share(cached: () => string | undefined): Promise<string> {
    const { signal: session } = this.#controller;
    const wait = new AbortController();
    const stop = () => wait.abort();
    const timer = setTimeout(stop, this.#settings.timeout);
    session.addEventListener('abort', stop);
    const granted = async (): Promise<string> => {
      clearTimeout(timer);
      // A token may have arrived while this waited for the lock.
      return cached() ?? this.#obtain(session);
    };
    const locks = globalThis.navigator?.locks;
    // (lib.dom types the lock's promise as the callback's promise, unflattened.)
    const shared: Promise<string> = (
      locks ? (locks.request(this.#name, { signal: wait.signal }, granted) as unknown as Promise<string>) : granted()
    )
      .catch((error: unknown) => {
        const e = error instanceof TokenSecError ? error : fail(session.aborted ? 'ABORTED' : 'TIMEOUT', 'No lock');
        if (!session.aborted) {
          this.#emit('error', e);
          if (e.status === 401 || e.status === 403) this.#setState('refused', e);
        }
        throw e;
      })
      .finally(() => {
        if (this.#pending === shared) this.#pending = undefined;
      });
    return shared;
  }

  /** One handshake, retried after network errors, time-outs and 5xx; the token kept unless the session was cleared meanwhile. */
  async #obtain(signal: AbortSignal): Promise<string> {
    const { retries, retryDelay, lifetime } = this.#settings;
    for (let attempt = 0; ; attempt++) {
      try {
        let token = await handshake({ ...this.#settings, csrfToken: this.#csrfToken(), signal });
        let expiresIn: unknown;
        try {
          // An OAuth-style token response: { "access_token": "...", "expires_in": 300 }
          const answer = JSON.parse(token);
          if (typeof answer.access_token === 'string') {
            token = answer.access_token;
            expiresIn = answer.expires_in;
          }
        } catch {
          // a bare token
        }
        if (!signal.aborted) this.#keep(token, expiryOf(token, expiresIn, lifetime));
        return token;
      } catch (error) {
        if (attempt >= retries || !isRetryable(error as TokenSecError) || signal.aborted) throw error;
        await backOff(retryDelay, attempt);
      }
    }
  }

  /** Sends the request with the token and a proof; `retry` after a 401 challenge from its origin. */
  async #send(request: Request, origin: string, retry: boolean): Promise<Response> {
    const { signal } = request;
    // Like fetch: an aborted signal rejects with its reason, and sends nothing.
    signal.throwIfAborted();
    const accessToken = await this.getToken({ signal }).catch((error: unknown) => {
      signal.throwIfAborted();
      throw error;
    });
    const headers = new Headers(request.headers);
    if (this.#settings.dpop === false) headers.set('authorization', `Bearer ${accessToken}`);
    else {
      headers.set('authorization', `DPoP ${accessToken}`);
      headers.set('dpop', await createDpopProof({ method: request.method, url: request.url, accessToken }));
    }
    // (A Request made with init resets referrer and referrerPolicy: passed on as given.)
    const { referrer, referrerPolicy } = request;
    const response = await fetch(new Request(request.clone(), { headers, referrer, referrerPolicy })).catch((error: unknown) => {
      // Like fetch: aborted, it rejects with the signal's reason (WebKit's fetch says AbortError
      // for a Request's signal whatever the reason, e.g. AbortSignal.timeout()'s TimeoutError).
      signal.throwIfAborted();
      throw error;
    });
    // Only an answer from the origin the proof was made for (not one a redirect led to) may
    // set that origin's nonce or ask for a retry.
    if (!response.url || new URL(response.url).origin !== origin) return response;
    // (The proofs to that origin carry its latest DPoP-Nonce: createDpopProof.)
    syncClock(response, origin);
    const challenge = response.status === 401 && response.headers.get('www-authenticate');
    if (retry || !challenge) return response;
    // A challenge other than a nonce means the token was refused: drop it (unless a newer one came).
    if (!/use_dpop_nonce/.test(challenge) && this.#token === accessToken) this.#token = undefined;
    return this.#send(request, origin, true);
  }
}
