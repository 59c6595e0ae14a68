/**
 * The page's side of a sealed session (the sealed bundle's `TokenSec.session()`): it starts a
 * dedicated Worker from the sealed bundle's own script and talks to it. Requests go in, responses
 * and events come out; the token never does. The worker's side is sealed-worker.ts.
 */
import { csrfTokenOf } from '../csrf-token.js';
import { fail } from '../fail.js';
import { sessionOptions } from './options.js';
import { watchPage } from './watch-page.js';
/** Where this script was loaded from, when it was a classic <script> (the worker's default URL). */
const scriptUrl = globalThis.document?.currentScript && document.currentScript.src;
/** The page's side of a sealed session: requests go to the worker, responses come back; the token never does. */
function sealedSession(settings, url) {
    const worker = new Worker(url);
    const session = Object.assign(new EventTarget(), { state: 'none', expiresAt: 0 });
    const calls = [];
    const post = (message, transfer = []) => worker.postMessage(message, transfer);
    // A worker that cannot start (a wrong URL, a CSP without worker-src) fails every call, now and later.
    let broken;
    worker.onerror = () => {
        const reply = { code: 'ERR_TOKENSEC_SESSION_WORKER' };
        broken = reply; // also when no call waits: the next one must not wait for a worker that never answers
        calls.forEach((call) => call(reply));
    };
    worker.onmessage = ({ data: [kind, id, data] }) => {
        if (kind === 'event') {
            const { type, ...detail } = data;
            // The worker's state and expiry, kept here before the event so that listeners read them current.
            if (detail.state)
                session.state = detail.state;
            if (detail.expiresAt !== undefined)
                session.expiresAt = detail.expiresAt;
            session.dispatchEvent(new CustomEvent(type, { detail }));
        }
        else {
            calls[id]?.(data);
            delete calls[id];
        }
    };
    post(['init', 0, { ...settings, sealed: undefined }]);
    watchPage((hidden) => post(['hidden', 0, hidden]));
    session.fetch = async (input, init) => {
        const request = new Request(input, init);
        const { url, method, headers, mode, credentials, cache, redirect, referrer, referrerPolicy, integrity, keepalive, signal } = request;
        // Like fetch: an aborted signal rejects with its reason, and nothing is sent.
        signal.throwIfAborted();
        const body = await request.arrayBuffer();
        const call = {
            url,
            method,
            headers: [...headers],
            mode,
            credentials,
            cache,
            redirect,
            // 'about:client' (the default) would mean the worker's own URL there: the page's is meant.
            referrer: referrer === 'about:client' ? location.href : referrer,
            referrerPolicy,
            integrity,
            keepalive,
            body,
            // The worker has no document.cookie: the page reads the CSRF token for each call.
            csrfToken: csrfTokenOf(settings),
        };
        const reply = broken ??
            (await new Promise((resolve, reject) => {
                const id = calls.push(resolve) - 1;
                // Aborted during the call: the worker cancels its request, the caller gets the reason at once.
                signal.addEventListener('abort', () => {
                    delete calls[id];
                    post(['abort', id]);
                    reject(signal.reason);
                });
                post(['fetch', id, call], [body]);
            }));
        if (reply.code)
            throw fail(reply.code, 'Sealed fetch failed', reply.status);
        // fetch's own errors (network, redirect: 'error') come back as what fetch throws.
        if (reply.name)
            throw reply.name === 'TypeError' ? new TypeError(reply.message) : new DOMException(reply.message, reply.name);
        const meta = reply.meta;
        // A Response built here has url '', redirected false, type 'default', and no status 0: the
        // worker's values are set on it as own properties (clone() gives a plain Response).
        const response = new Response(reply.body?.byteLength ? reply.body : null, { headers: reply.headers, status: meta.status || 200 });
        for (const [name, value] of Object.entries(meta))
            Object.defineProperty(response, name, { value });
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
export function session(options = {}) {
    const settings = sessionOptions(options);
    const url = options.sealed || scriptUrl;
    if (!url)
        throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'sealed: the URL of tokensec-sealed.js');
    return sealedSession(settings, url);
}
