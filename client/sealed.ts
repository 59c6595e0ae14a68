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
  type SessionOptions,
  type TokenSecSession,
} from './token-session.js';

export * from './index.js';
export type { SessionOptions, TokenSecSession } from './token-session.js';

/** The worker's answer to a fetch: the response's parts, or an error's code and status. */
type Reply = ResponseInit & Detail & { body?: ArrayBuffer };

/** Where this script was loaded from, when it was a classic <script> (the worker's default URL). */
const scriptUrl = globalThis.document?.currentScript && (document.currentScript as HTMLScriptElement).src;

/** The page's side of a sealed session: requests go to the worker, responses come back; the token never does. */
function sealedSession(options: ReturnType<typeof sessionOptions>, url: string | URL): TokenSecSession {
  const worker = new Worker(url);
  const session = new EventTarget() as TokenSecSession;
  const calls: ((result: Reply) => void)[] = [];
  const post = (message: Message, transfer?: Transferable[]) => worker.postMessage(message, transfer ?? []);
  // A worker that cannot start (a wrong URL, a CSP without worker-src) fails every call, now and later.
  let broken: Reply | undefined;
  worker.onerror = () => calls.map((call) => call((broken = { code: 'ERR_TOKENSEC_SESSION_WORKER' })));
  worker.onmessage = ({ data: [kind, id = 0, data] }: MessageEvent<Message>) =>
    kind == 'event' ? session.dispatchEvent(new CustomEvent(data.type, { detail: data })) : (calls[id]?.(data), delete calls[id]);
  post(['init', 0, { ...options, sealed: undefined }]);
  watchPage((hidden) => post(['hidden', 0, hidden]));
  session.fetch = async (input, init) => {
    const request = new Request(input, init);
    const { url, method, credentials, headers } = request;
    const body = await request.arrayBuffer();
    // The worker has no document.cookie: the page reads the CSRF token for each call.
    const csrfToken = options.csrfToken ?? readCookie(options.cookie ?? 'tokensec');
    const r =
      broken ??
      (await new Promise<Reply>((resolve) =>
        post(['fetch', calls.push(resolve) - 1, { url, method, credentials, headers: [...headers], body, csrfToken }], [body]),
      ));
    if (r.code) throw fail(r.code, 'Sealed fetch failed', r.status);
    return new Response(r.body?.byteLength ? r.body : null, r);
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
export function session(options: SessionOptions = {}): TokenSecSession {
  const checked = sessionOptions(options);
  const url = options.sealed || scriptUrl;
  if (!url) throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'sealed: the URL of tokensec-sealed.js');
  return sealedSession(checked, url);
}

/** The worker's side: the session itself, driven by the page's messages. */
function serveSealed() {
  let options: Parameters<typeof localSession>[0];
  let served: ReturnType<typeof localSession> | undefined;
  const reply = (message: Message, transfer: Transferable[] = []) => postMessage(message, { transfer });

  addEventListener('message', async ({ data: [kind, id, data] }: MessageEvent<Message>) => {
    if (kind == 'init' && !served) {
      served = localSession((options = data), true);
      for (const type of ['token', 'refresh', 'error', 'expired'])
        served.events.addEventListener(type, (event) => {
          const { expiresAt, code, status } = ((event as CustomEvent).detail ?? {}) as Detail;
          reply(['event', 0, { type, expiresAt, code, status }]);
        });
    } else if (kind == 'hidden') served?.setHidden(data);
    else if (kind == 'clear') served?.clear();
    else if (kind == 'fetch' && served) {
      const { url, csrfToken, body, ...init } = data;
      options.csrfToken = csrfToken;
      try {
        const r = await served.fetch(url, { ...init, body: body.byteLength ? body : undefined });
        const response = { status: r.status, statusText: r.statusText, headers: [...r.headers], body: await r.arrayBuffer() };
        reply(['fetch', id, response], [response.body]);
      } catch (error) {
        const { code = 'ERR_TOKENSEC_NETWORK', status } = error as Detail;
        reply(['fetch', id, { code, status }]);
      }
    }
  });
}

// Loaded as the worker script (by sealedSession above): serve.
if (!globalThis.document && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope == 'function') serveSealed();
