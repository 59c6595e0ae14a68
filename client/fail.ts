import { TokenSecError, type TokenSecErrorCode } from '../src/protocol/errors.js';

/** A code without its `ERR_TOKENSEC_` prefix, which `fail` adds: the bundles carry the prefix once. */
export type CodeName = TokenSecErrorCode extends infer Code ? (Code extends `ERR_TOKENSEC_${infer Name}` ? Name : never) : never;

/**
 * Every browser-side error but an HTTP answer's (which carries its status): `fail('NO_SECRET', …)`
 * is ERR_TOKENSEC_NO_SECRET. Messages are terse to keep the bundles small; README.md explains every code.
 */
export const fail = (code: CodeName, message: string, options?: ErrorOptions) =>
  new TokenSecError(`ERR_TOKENSEC_${code}`, message, 0, options); // (status 0: none)
