/**
 * The handshake bundle's entry (`tokensec/client`, dist/browser/tokensec.js): the handshake and
 * the page's DPoP key and proofs. Only re-exports: the code is in the modules named here.
 */
export { TokenSecError } from '../src/protocol/errors.js';
export { handshake } from './handshake.js';
export { createDpopProof, deleteDpopKey, getDpopKey, rotateDpopKey } from './dpop.js';
