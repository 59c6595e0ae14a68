/**
 * DPoP proofs made by code nobody here wrote (jose's SignJWT), including deliberately bad ones,
 * for the verifier's tests.
 */
import {
  checkDpopProof,
  recordProof,
  type DpopExpectation,
  type DpopVerifyOptions,
  type VerifiedProof,
} from '../../src/server/dpop/verify.js';
import { nonceSource } from '../../src/server/dpop/nonce.js';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

export interface ProofKey {
  alg: 'ES256' | 'EdDSA';
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function proofKey(alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, crv: alg === 'EdDSA' ? 'Ed25519' : undefined });
  return { alg, privateKey, jwk: await exportJWK(publicKey) };
}

export interface ProofInput {
  htm: string;
  htu: string;
  iat?: number;
  jti?: string;
  ath?: string;
  nonce?: string;
  [claim: string]: unknown;
}

/**
 * The nonce a middleware with the default nonce options hands out now, in this process (they share
 * one random key outside production): what a client carries after any answer of the server.
 */
export const currentNonce = (): string => nonceSource().current();

/**
 * A proof signed by jose; `header` overrides or adds header members (typ, jwk, crit...). It
 * carries the current default nonce, as a client that has had an answer does, unless `claims`
 * names one (`nonce: undefined` for none).
 */
export async function joseProof(key: ProofKey, claims: ProofInput, header: Record<string, unknown> = {}): Promise<string> {
  const { iat = Math.floor(Date.now() / 1000), jti = crypto.randomUUID(), ...rest } = claims;
  if (!('nonce' in claims)) rest.nonce = currentNonce();
  return new SignJWT({ ...rest, jti, iat })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk, ...header })
    .sign(key.privateKey);
}

/** A compact JWS with an arbitrary header and claims and a garbage signature (alg none, HS256...). */
export function unsignedProof(header: Record<string, unknown>, claims: Record<string, unknown>, signature = ''): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(claims)}.${signature}`;
}

/** A compact JWS signed with Web Crypto over any header and claims (jose refuses to sign some of them, e.g. unknown crit). */
export async function signedProof(key: ProofKey, header: Record<string, unknown>, claims: Record<string, unknown>): Promise<string> {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${part(header)}.${part(claims)}`;
  const algorithm = key.alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'Ed25519' };
  const signature = await crypto.subtle.sign(algorithm, key.privateKey, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

export const sha256 = async (text: string) =>
  Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))).toString('base64url');

/**
 * What tokenSec.dpop() does with a proof, as its two production calls: checkDpopProof (header,
 * signature, claims) then recordProof (the replay store).
 */
export async function checkAndRecordProof(
  proof: string | undefined,
  expected: DpopExpectation,
  options: DpopVerifyOptions,
): Promise<VerifiedProof> {
  const verified = checkDpopProof(proof, expected, options);
  await recordProof(verified, options);
  return verified;
}
