import { TokenSession } from './token-session.js';
/** The events the page re-dispatches: each detail's expiresAt, code, status and state, never its token. */
const EVENTS = ['token', 'refresh', 'error', 'expired', 'state'];
let served;
/** The CSRF token the page sent with its latest call (a worker has no document.cookie). */
let csrfToken;
/** The fetches in flight, by call id, for the page's aborts. */
const aborts = [];
const reply = (message, transfer = []) => postMessage(message, { transfer });
function start(settings) {
    csrfToken = settings.csrfToken;
    served = new TokenSession(settings, () => csrfToken);
    for (const type of EVENTS)
        served.events.addEventListener(type, (event) => {
            const { expiresAt, code, status, state } = event.detail ?? {};
            reply(['event', 0, { type, expiresAt, code, status, state }]);
        });
}
/** Runs one fetch for the page; answers with the response's parts, or the error's. */
async function serveFetch(session, id, { url, csrfToken: token, body, ...init }) {
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
    }
    catch (error) {
        // A TokenSecError's code and status; fetch's own errors (TypeError, AbortError) by name.
        const { code, status, name, message } = error;
        reply(['fetch', id, code ? { code, status } : { name, message }]);
    }
    delete aborts[id];
}
function onMessage({ data: [kind, id, data] }) {
    if (kind === 'init' && !served)
        start(data);
    else if (kind === 'hidden')
        served?.setHidden(data);
    else if (kind === 'clear')
        served?.clear();
    else if (kind === 'abort')
        aborts[id]?.abort();
    else if (kind === 'fetch' && served)
        serveFetch(served, id, data);
}
// Loaded as the worker script (by the page's sealed session): serve.
if (!globalThis.document && typeof globalThis.WorkerGlobalScope === 'function')
    addEventListener('message', onMessage);
