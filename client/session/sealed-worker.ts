/**
 * The worker's side of a sealed session: the sealed bundle run as a dedicated Worker serves the
 * session itself, driven by the page's messages. It never posts the token anywhere, not even to
 * the other tabs. It listens only in a worker (the last line); in a page it does nothing.
 */
import type { Detail, FetchCall, PageToWorker, Reply, WorkerToPage } from './messages.js';
import type { SessionSettings } from './options.js';
import { TokenSession } from './token-session.js';

/** The events the page re-dispatches: each detail's expiresAt, code, status and state, never its token. */
const EVENTS = ['token', 'refresh', 'error', 'expired', 'state'];

let served: TokenSession | undefined;
/** The CSRF token the page sent with its latest call (a worker has no document.cookie). */
let csrfToken: string | undefined;
/** The fetches in flight, by call id, for the page's aborts. */
const aborts: AbortController[] = [];

const reply = (message: WorkerToPage, transfer: Transferable[] = []) => postMessage(message, { transfer });

function start(settings: SessionSettings): void {
  csrfToken = settings.csrfToken;
  served = new TokenSession(settings, () => csrfToken);
  for (const type of EVENTS)
    served.events.addEventListener(type, (event) => {
      const { expiresAt, code, status, state }: Detail = (event as CustomEvent<Detail | undefined>).detail ?? {};
      reply(['event', 0, { type, expiresAt, code, status, state }]);
    });
}

/** Runs one fetch for the page; answers with the response's parts, or the error's. */
async function serveFetch(session: TokenSession, id: number, { url, csrfToken: token, body, ...init }: FetchCall): Promise<void> {
  csrfToken = token;
  try {
    const response = await session.fetch(url, {
      ...init,
      body: body.byteLength ? body : undefined,
      signal: (aborts[id] = new AbortController()).signal,
    });
    const { redirected, type, status, ok, statusText } = response;
    const meta = { url: response.url, redirected, type, status, ok, statusText };
    const answer = { meta, headers: [...response.headers], body: await response.arrayBuffer() };
    reply(['fetch', id, answer], [answer.body]);
  } catch (error) {
    // A TokenSecError's code, status and message; fetch's own errors (TypeError, AbortError) by name and message.
    const { code, status, name, message } = error as Reply;
    reply(['fetch', id, { code, status, name, message }]);
  }
  delete aborts[id];
}

function onMessage({ data: [kind, id, data] }: MessageEvent<PageToWorker>): void {
  if (kind === 'init' && !served) start(data);
  else if (kind === 'hidden') served?.setHidden(data);
  else if (kind === 'clear') served?.clear();
  else if (kind === 'abort') aborts[id]?.abort();
  else if (kind === 'fetch' && served) serveFetch(served, id, data);
}

// Loaded as the worker script (by the page's sealed session): serve.
if (!globalThis.document && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'function')
  addEventListener('message', onMessage);
