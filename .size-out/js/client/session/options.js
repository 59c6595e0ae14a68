/** The session's options, checked and completed once when a session starts. */
import { fail } from '../fail.js';
/** Completes the options; throws ERR_TOKENSEC_INVALID_OPTIONS on a negative number or a bad URL. */
export function sessionOptions(options) {
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
    }
    catch {
        // reported below
    }
    throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'Bad session options');
}
