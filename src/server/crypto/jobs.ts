/**
 * The costly part of a handshake's crypto, as jobs that run inline or on worker threads
 * (`handshake({ workers })`, pool.ts). Both paths call these same functions, so their bytes
 * are the same; the test vectors pass through each.
 */
import type { RequestTarget } from '../../protocol/context.js';
import type { TokenSecErrorCode } from '../../protocol/errors.js';
import { PUBLIC_KEY_LENGTH, type Algorithm } from '../../protocol/wire.js';
import { deriveResponseKey, encryptPayload, generateServerKeyPair, type ResponseKey } from './primitives.js';
import type { DpopAlgorithm, PublicJwk } from '../../protocol/dpop.js';
import { proofSignatureProblem } from '../dpop/verify.js';

export interface DeriveKeyInput {
  algorithm: Algorithm;
  publicKey: Uint8Array;
  /** The same key as canonical base64url (the header's), which X25519 imports as it is. */
  publicKeyBase64url?: string | undefined;
  /** The secret the binding was checked with; it salts HKDF. As UTF-8 bytes (inline only), the caller's to wipe. */
  secret: string | Uint8Array;
  target: RequestTarget;
}

/**
 * The response key: a fresh server key pair, ECDH with the client's key, HKDF. Everything but the
 * payload's encryption, so it runs before a payload function. The shared secret never leaves this
 * thread (deriveResponseKey wipes it). Throws ERR_TOKENSEC_INVALID_PUBLIC_KEY (400).
 */
export function deriveKey(input: DeriveKeyInput): ResponseKey {
  const pair = generateServerKeyPair(input.algorithm);
  const sharedSecret = pair.deriveSharedSecret(input.publicKey, input.publicKeyBase64url);
  return deriveResponseKey({ request: input, serverPublicKey: pair.publicKey, sharedSecret, secret: input.secret, target: input.target });
}

export interface SealValueInput extends DeriveKeyInput {
  /** A non-empty payload of at most MAX_PAYLOAD_BYTES, checked when the middleware was made. */
  payload: string;
}

/** deriveKey and encryptPayload as one job, for a payload known before the request (a string option). Returns the response value. */
export function sealValue(input: SealValueInput): string {
  return encryptPayload(deriveKey(input), input.payload);
}

/**
 * A response key as one buffer (server public key, key, context), which a worker moves to the
 * main thread (a transfer, not a copy: no copy of the key stays behind). Wipes the key it packed.
 */
export function packResponseKey({ serverPublicKey, key, context }: ResponseKey): Uint8Array {
  const packed = new Uint8Array(serverPublicKey.length + key.length + context.length);
  packed.set(serverPublicKey);
  packed.set(key, serverPublicKey.length);
  packed.set(context, serverPublicKey.length + key.length);
  key.fill(0);
  return packed;
}

export function unpackResponseKey(packed: Uint8Array, algorithm: Algorithm): ResponseKey {
  const keyStart = PUBLIC_KEY_LENGTH[algorithm];
  return {
    serverPublicKey: packed.subarray(0, keyStart),
    key: packed.subarray(keyStart, keyStart + 32),
    context: packed.subarray(keyStart + 32),
  };
}

/** A DPoP proof's signature to check: its key (whose header the main thread accepted) and what was signed. */
export interface ProofSignatureInput {
  alg: DpopAlgorithm;
  jwk: PublicJwk;
  jkt: string;
  signingInput: string;
  encodedSignature: string;
}

/** Whether a proof's signature verifies, exactly as checkDpopProof checks it (verify.ts). */
export const proofSignatureValid = (input: ProofSignatureInput): boolean =>
  proofSignatureProblem(input.alg, input.jwk, input.jkt, input.signingInput, input.encodedSignature) === undefined;

/** A job for a worker thread, and what it answers. */
export type CryptoJob =
  { kind: 'derive'; input: DeriveKeyInput } | { kind: 'seal'; input: SealValueInput } | { kind: 'proof'; input: ProofSignatureInput };
export type CryptoJobResult<J extends CryptoJob> = J extends { kind: 'derive' }
  ? ResponseKey
  : J extends { kind: 'proof' }
    ? boolean
    : string;

export function runCryptoJob(job: CryptoJob): ResponseKey | string | boolean {
  if (job.kind === 'proof') return proofSignatureValid(job.input);
  return job.kind === 'derive' ? deriveKey(job.input) : sealValue(job.input);
}

/** Worker to main thread: per job, its result or the TokenSecError it threw. */
export type CryptoJobAnswer = [
  id: number,
  /** The sealed response value, the response key packed (packResponseKey), or whether a proof's signature verifies. */
  result: string | Uint8Array | boolean | undefined,
  error: { code: TokenSecErrorCode; message: string; status: number } | undefined,
];
