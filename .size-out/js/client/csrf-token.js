import { CSRF_COOKIE } from '../src/protocol/wire.js';
/** The CSRF token a handshake sends: the `csrfToken` option, else the cookie `initialize` set (`cookie`, default `tokensec`). */
export const csrfTokenOf = (options) => options.csrfToken ?? readCookie(options.cookie ?? CSRF_COOKIE);
/** The first cookie of that name, its value unquoted and decoded, as the `cookie` package parses it. */
function readCookie(name) {
    const pair = globalThis.document?.cookie
        .split(';')
        .map((part) => part.split('='))
        .find(([key]) => key?.trim() === name);
    let value = pair?.slice(1).join('=').trim();
    if (value?.[0] === '"' && value.at(-1) === '"')
        value = value.slice(1, -1);
    try {
        return value && decodeURIComponent(value);
    }
    catch {
        return value;
    }
}
