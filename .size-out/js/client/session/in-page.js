/**
 * `TokenSec.session()` of the session bundle: the token session in the page. Sealed mode, which
 * keeps the token in a Worker, is the sealed bundle's (sealed-page.ts, sealed-worker.ts).
 */
import { fail } from '../fail.js';
import { sessionOptions } from './options.js';
import { TokenSession } from './token-session.js';
import { watchPage } from './watch-page.js';
/**
 * Starts a token session in the page: `getToken()`, `fetch()`, `clear()`, `state`, `expiresAt` and events.
 *
 * @example
 * ```js
 * const session = TokenSec.session({ uri: '/token' });
 * const me = await (await session.fetch('/api/me')).json();
 * ```
 */
export function session(options = {}) {
    const settings = sessionOptions(options);
    // Silently running unsealed would keep the token where the caller asked it not to be.
    if (options.sealed)
        throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'sealed needs tokensec-sealed.js');
    const engine = new TokenSession(settings);
    watchPage((hidden) => engine.setHidden(hidden));
    // The session object is the engine's EventTarget with bound methods: the engine and its state stay out of reach.
    const getToken = (options) => options?.detailed ? engine.getToken(options).then((token) => ({ token, expiresAt: engine.expiresAt })) : engine.getToken(options);
    const methods = {
        getToken: getToken,
        fetch: (input, init) => engine.fetch(input, init),
        clear: () => engine.clear(),
    };
    return Object.defineProperties(Object.assign(engine.events, methods), {
        state: { get: () => engine.state },
        expiresAt: { get: () => engine.expiresAt },
    });
}
