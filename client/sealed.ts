/**
 * The sealed bundle (`tokensec/sealed`, dist/browser/tokensec-sealed.js), one classic script in
 * two roles. In a page, `TokenSec.session()` starts a dedicated Worker from this same script and
 * talks to it: requests go in, responses and events come out, the token never does. In that
 * worker, the script runs the token session itself; it never posts the token anywhere, not even
 * to the other tabs.
 */
import { readCookie } from './cookie.js';
import { fail } from './fail.js';
import {
  localSession,
  sessionOptions,
  watchPage,
  type Detail,
  type Message,
  type SealedSession,
  type SessionOptions,
  type SessionState,
} from './token-session.js';

export * from './index.js';
export type {
  ErrorDetail,
  SealedSession,
  SealedSession as TokenSecSession,
  SealedSessionEventMap,
  SessionBase,
  SessionOptions,
  SessionState,
} from './token-session.js';

/** What the worker tells the page about a response: fetch's own values, which a Response built in the page cannot hold. */
type Meta = Pick<Response, 'url' | 'redirected' | 'type' | 'status' | 'ok' | 'statusText'>;

/** The worker's answer to a fetch: the response's parts, or an error's code and status (or name and message). */
type Reply = Detail & { meta?: Meta; headers?: [string, string][]; body?: ArrayBuffer; name?: string; message?: string };

/** Where this script was loaded from, when it was a classic <script> (the worker's default URL). */
const scriptUrl = globalThis.document?.currentScript && (document.currentScript as HTMLScriptElement).src;

/** The page's side of a sealed session: requests go to the worker, responses come back; the token never does. */
function sealedSession(options: ReturnType<typeof sessionOptions>, url: string | URL): SealedSession {
  const worker = new Worker(url);
  const session = Object.assign(new EventTarget(), { state: 'none' as SessionState, expiresAt: 0 }) as SealedSession & {
    state: SessionState;
    expiresAt: number;
  };
  const calls: ((result: Reply) => void)[] = [];
  const post = (message: Message, transfer?: Transferable[]) => worker.postMessage(message, transfer ?? []);
  // A worker that cannot start (a wrong URL, a CSP without worker-src) fails every call, now and later.
  let broken: Reply | undefined;
  worker.onerror = () => calls.map((call) => call((broken = { code: 'ERR_TOKENSEC_SESSION_WORKER' })));
  worker.onmessage = ({ data: [kind, id = 0, data] }: MessageEvent<Message>) => {
    if (kind == 'event') {
      // The worker's state and expiry, kept here before the event so that listeners read them current.
      if (data.state) session.state = data.state;
      if (data.expiresAt !== undefined) session.expiresAt = data.expiresAt;
      const { type, ...detail } = data;
      session.dispatchEvent(new CustomEvent(type, { detail }));
    } else (calls[id]?.(data), delete calls[id]);
  };
  post(['init', 0, { ...options, sealed: undefined }]);
  watchPage((hidden) => post(['hidden', 0, hidden]));
  session.fetch = async (input, init) => {
    const request = new Request(input, init);
    const { url, method, headers, mode, credentials, cache, redirect, referrer, referrerPolicy, integrity, keepalive, signal } = request;
    // Like fetch: an aborted signal rejects with its reason, and nothing is sent.
    signal.throwIfAborted();
    const body = await request.arrayBuffer();
    // The worker has no document.cookie: the page reads the CSRF token for each call.
    const csrfToken = options.csrfToken ?? readCookie(options.cookie ?? 'tokensec');
    // 'about:client' (the default) would mean the worker's own URL there: the page's is meant.
    const from = referrer == 'about:client' ? location.href : referrer;
    const parts = {
      url,
      method,
      headers: [...headers],
      mode,
      credentials,
      cache,
      redirect,
      referrer: from,
      referrerPolicy,
      integrity,
      keepalive,
    };
    const r =
      broken ??
      (await new Promise<Reply>((resolve, reject) => {
        const id = calls.push(resolve) - 1;
        // Aborted during the call: the worker cancels its request, the caller gets the reason at once.
        signal.addEventListener('abort', () => {
          delete calls[id];
          post(['abort', id]);
          reject(signal.reason);
        });
        post(['fetch', id, { ...parts, body, csrfToken }], [body]);
      }));
    if (r.code) throw fail(r.code, 'Sealed fetch failed', r.status);
    // fetch's own errors (network, redirect: 'error') come back as what fetch throws.
    if (r.name) throw r.name == 'TypeError' ? new TypeError(r.message) : new DOMException(r.message, r.name);
    const meta = r.meta!;
    // A Response built here has url '', redirected false, type 'default', and no status 0: the
    // worker's values are set on it as own properties (clone() gives a plain Response).
    const response = new Response(r.body?.byteLength ? r.body : null, { headers: r.headers, status: meta.status || 200 });
    for (const [name, value] of Object.entries(meta)) Object.defineProperty(response, name, { value });
    return response;
  };
  session.clear = () => post(['clear']);
  return session;
}

/**
 * Starts a sealed token session: it runs in a dedicated Worker, so the token never enters the
 * page's JavaScript heap. The page gets `fetch()`, `clear()` and events; there is no `getToken()`.
 *
 * @example
 * ```js
 * // <script src="/tokensec-sealed.js"></script>
 * const session = TokenSec.session({ uri: '/token' });
 * const me = await (await session.fetch('/api/me')).json();
 * ```
 */
export function session(options: SessionOptions = {}): SealedSession {
  const checked = sessionOptions(options);
  const url = options.sealed || scriptUrl;
  if (!url) throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'sealed: the URL of tokensec-sealed.js');
  return sealedSession(checked, url);
}

/** The worker's side: the session itself, driven by the page's messages. */
function serveSealed() {
  let options: Parameters<typeof localSession>[0];
  let served: ReturnType<typeof localSession> | undefined;
  const aborts: AbortController[] = [];
  const reply = (message: Message, transfer: Transferable[] = []) => postMessage(message, { transfer });

  addEventListener('message', async ({ data: [kind, id = 0, data] }: MessageEvent<Message>) => {
    if (kind == 'init' && !served) {
      served = localSession((options = data), true);
      for (const type of ['token', 'refresh', 'error', 'expired', 'state'])
        served.events.addEventListener(type, (event) => {
          const { expiresAt, code, status, state } = ((event as CustomEvent).detail ?? {}) as Detail;
          reply(['event', 0, { type, expiresAt, code, status, state }]);
        });
    } else if (kind == 'hidden') served?.setHidden(data);
    else if (kind == 'clear') served?.clear();
    else if (kind == 'abort') aborts[id]?.abort();
    else if (kind == 'fetch' && served) {
      const { url, csrfToken, body, ...init } = data;
      options.csrfToken = csrfToken;
      try {
        const r = await served.fetch(url, {
          ...init,
          body: body.byteLength ? body : undefined,
          signal: (aborts[id] = new AbortController()).signal,
        });
        const { redirected, type, status, ok, statusText } = r;
        const response = {
          meta: { url: r.url, redirected, type, status, ok, statusText },
          headers: [...r.headers],
          body: await r.arrayBuffer(),
        };
        reply(['fetch', id, response], [response.body]);
      } catch (error) {
        // A TokenSecError's code and status; fetch's own errors (TypeError, AbortError) by name.
        const { code, status, name, message } = error as Reply;
        reply(['fetch', id, code ? { code, status } : { name, message }]);
      }
      delete aborts[id];
    }
  });
}

// Loaded as the worker script (by sealedSession above): serve.
if (!globalThis.document && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope == 'function') serveSealed();
