import { TokenSecError } from '../src/protocol/errors.js';
/** Every browser-side error. Messages are terse to keep the bundles small; README.md explains every code. */
export const fail = (code, message, status, options) => new TokenSecError(code, message, status, options);
