/**
 * TokenSec server: Express (node:http) middleware that hands an access token to the browser
 * client through an ECDH-encrypted handshake header. See README.md and docs/PROTOCOL.md.
 */
import { client } from './serve-client.js';
import { handshake } from './handshake.js';
import { initialize } from './initialize.js';

export { client, handshake, initialize };
export { TokenSecError, type TokenSecErrorCode } from './errors.js';
export { DEFAULT_HEADER, CSRF_HEADER, VERSION } from './wire.js';
export type { ClientOptions } from './serve-client.js';
export type { HandshakeOptions, HandshakeRequestLike } from './handshake.js';
export type { CookieOptions, InitializeOptions } from './initialize.js';

const tokenSec = { initialize, handshake, client };
export default tokenSec;
