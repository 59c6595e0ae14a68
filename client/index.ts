/**
 * The handshake bundle's entry (`tokensec/client`, dist/browser/tokensec.js): the handshake and
 * the page's DPoP key and proofs. Only re-exports: the code is in the modules named here.
 */
export { TokenSecError } from '../src/protocol/errors.js';
export type { TokenSecErrorCode } from '../src/protocol/errors.js';
export type { ClientDpopAlgorithm } from './algorithms.js';
export type { Algorithm } from '../src/protocol/wire.js';
export type { PublicJwk } from '../src/protocol/dpop.js';
export { handshake, type ClientHandshakeOptions, type HandshakeCallback } from './handshake.js';
export { createDpopProof, deleteDpopKey, getDpopKey, rotateDpopKey } from './dpop.js';
export type { DpopKey, DpopKeyOptions, DpopProofInput, WebCryptoKey } from './dpop.js';
