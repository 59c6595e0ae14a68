/**
 * The costly part of a handshake's crypto, as jobs that run inline or on worker threads
 * (`handshake({ workers })`, crypto-pool.ts). Both paths call these same functions, so their bytes
 * are the same; the test vectors pass through each.
 */
import type { RequestTarget } from '../protocol/context.js';
import type { Algorithm } from '../protocol/wire.js';
import { generateServerKeyPair, importServerKeyPair, sealPayload } from './crypto.js';

export interface AgreeInput {
  algorithm: Algorithm;
  publicKey: Uint8Array;
  /** The same key as canonical base64url (the header's), which X25519 imports as it is. */
  publicKeyBase64url?: string | undefined;
  /** A fixed server private key: for the test vectors only. */
  serverPrivateKey?: Uint8Array | undefined;
}

export interface Agreement {
  serverPublicKey: Uint8Array;
  sharedSecret: Uint8Array;
}

/** A fresh server key pair and ECDH with the client's key. Throws ERR_TOKENSEC_INVALID_PUBLIC_KEY (400). */
export function agree({ algorithm, publicKey, publicKeyBase64url, serverPrivateKey }: AgreeInput): Agreement {
  const pair = serverPrivateKey ? importServerKeyPair(algorithm, serverPrivateKey) : generateServerKeyPair(algorithm);
  return { serverPublicKey: pair.publicKey, sharedSecret: pair.deriveSharedSecret(publicKey, publicKeyBase64url) };
}

export interface AgreeAndSealInput extends AgreeInput {
  /** The secret the binding was checked with; it salts HKDF. */
  secret: string;
  target: RequestTarget;
  /** A non-empty payload of at most MAX_PAYLOAD_BYTES, checked when the middleware was made. */
  payload: string;
  /** A fixed AES-GCM IV: for the test vectors only. */
  iv?: Uint8Array | undefined;
}

/**
 * `agree` then `sealPayload` as one job, for a payload known before the request (a string
 * option): the shared secret never leaves the thread that made it, and is wiped once used.
 * Returns the response value.
 */
export function agreeAndSeal(input: AgreeAndSealInput): string {
  const { serverPublicKey, sharedSecret } = agree(input);
  try {
    return sealPayload({
      request: input,
      serverPublicKey,
      sharedSecret,
      secret: input.secret,
      target: input.target,
      payload: input.payload,
      ...(input.iv && { iv: input.iv }),
    });
  } finally {
    sharedSecret.fill(0);
  }
}

/** A job for a worker thread, and what it answers. */
export type CryptoJob = { kind: 'agree'; input: AgreeInput } | { kind: 'agree-and-seal'; input: AgreeAndSealInput };
export type CryptoJobResult<J extends CryptoJob> = J extends { kind: 'agree' } ? Agreement : string;

export function runCryptoJob(job: CryptoJob): Agreement | string {
  return job.kind === 'agree' ? agree(job.input) : agreeAndSeal(job.input);
}
