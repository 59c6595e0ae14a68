/**
 * The verifier of DBSC proofs: compact JWS with `typ: "dbsc+jwt"`, ES256 or RS256. At
 * registration the key comes in the JWS header (`jwk`); at refresh it is the key stored then, and a
 * `jwk` in the header is ignored (the stored key is the only one that can verify). The caller
 * checks the claims it needs (`jti`, `authorization`, `aud`); this checks their types.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { dbscError } from './headers.js';

/** A DBSC key's signature algorithm, as the browser names it in its registration (JWS `alg`). */
export type DbscAlgorithm = 'ES256' | 'RS256';
export const DBSC_ALGORITHMS: readonly DbscAlgorithm[] = ['ES256', 'RS256'];
export const DBSC_TYP = 'dbsc+jwt';

/** The public key of a DBSC session, as a JWK with only its public members. */
export type DbscJwk =
  | {
      /** Key type: elliptic curve. */
      kty: 'EC';
      /** The curve: P-256 (ES256). */
      crv: 'P-256';
      /** The public point's x coordinate, base64url. */
      x: string;
      /** The public point's y coordinate, base64url. */
      y: string;
    }
  | {
      /** Key type: RSA (RS256). */
      kty: 'RSA';
      /** The modulus, base64url. */
      n: string;
      /** The public exponent, base64url. */
      e: string;
    };

export interface DbscClaims {
  jti: string;
  authorization?: string;
  aud?: string;
}

export interface VerifiedDbscProof {
  alg: DbscAlgorithm;
  jwk: DbscJwk;
  /** RFC 7638 thumbprint of the key, base64url. */
  jkt: string;
  claims: DbscClaims;
}

const MAX_PROOF_LENGTH = 8192;
const MAX_CLAIM_LENGTH = 1024;
const MIN_RSA_BITS = 2048;
const B64URL = /^[A-Za-z0-9_-]*$/;

/** `status`: 400 at registration; the refresh answers 403 with a fresh challenge instead. */
const invalid = (what: string) => dbscError('ERR_TOKENSEC_DBSC_INVALID_PROOF', `Invalid DBSC proof: ${what}.`, 400);

function decodeJson(part: string): Record<string, unknown> | undefined {
  if (!B64URL.test(part)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const bytesOf = (value: unknown): number =>
  typeof value === 'string' && value !== '' && B64URL.test(value) ? Buffer.from(value, 'base64url').length : 0;

/** The public key `jwk` holds for `alg`, with only its public members, or undefined. */
export function dbscJwk(alg: DbscAlgorithm, jwk: unknown): DbscJwk | undefined {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return undefined;
  const k = jwk as Record<string, unknown>;
  if ('d' in k || 'p' in k || 'q' in k) return undefined; // a private key has no business here
  if (alg === 'ES256') {
    if (k.kty !== 'EC' || k.crv !== 'P-256' || bytesOf(k.x) !== 32 || bytesOf(k.y) !== 32) return undefined;
    return { kty: 'EC', crv: 'P-256', x: k.x as string, y: k.y as string };
  }
  if (k.kty !== 'RSA' || bytesOf(k.n) * 8 < MIN_RSA_BITS || bytesOf(k.e) === 0 || bytesOf(k.e) > 8) return undefined;
  return { kty: 'RSA', n: k.n as string, e: k.e as string };
}

/** RFC 7638: the hash of the required members in lexicographic order. */
export function dbscThumbprint(jwk: DbscJwk): string {
  const input =
    jwk.kty === 'EC'
      ? JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
      : JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return createHash('sha256').update(input).digest('base64url');
}

function importKey(jwk: DbscJwk): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw invalid('the jwk is not a valid public key');
  }
}

function signatureValid(alg: DbscAlgorithm, key: KeyObject, input: string, signature: Buffer): boolean {
  try {
    return alg === 'ES256'
      ? signature.length === 64 && verify('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }, signature)
      : verify('sha256', Buffer.from(input), key, signature);
  } catch {
    return false;
  }
}

/**
 * Verifies a DBSC proof. `stored`: the session's key at refresh; without it (registration) the key
 * is the header's `jwk`. Throws 400 ERR_TOKENSEC_DBSC_INVALID_PROOF saying what failed.
 *
 * @example
 * ```ts
 * const { jwk, claims } = verifyDbscProof(header, { algorithms: ['ES256', 'RS256'] });
 * ```
 */
export function verifyDbscProof(
  proof: string,
  expected: { algorithms: readonly DbscAlgorithm[]; stored?: { alg: DbscAlgorithm; jwk: DbscJwk } },
): VerifiedDbscProof {
  if (proof.length > MAX_PROOF_LENGTH) throw invalid(`longer than ${MAX_PROOF_LENGTH} characters`);
  const [encodedHeader = '', encodedClaims = '', encodedSignature = '', ...rest] = proof.split('.');
  if (rest.length > 0 || !encodedSignature || !B64URL.test(encodedSignature)) throw invalid('not a compact JWS of three parts');
  const header = decodeJson(encodedHeader);
  if (!header) throw invalid('the header is not a base64url JSON object');
  if (header.typ !== DBSC_TYP) throw invalid(`typ must be "${DBSC_TYP}"`);
  const { alg } = header;
  if (typeof alg !== 'string' || !(expected.algorithms as readonly string[]).includes(alg)) {
    throw invalid(`alg must be one of ${expected.algorithms.join(', ')}`);
  }
  if ('crit' in header) throw invalid('crit is not supported');
  let jwk: DbscJwk | undefined;
  if (expected.stored) {
    if (alg !== expected.stored.alg) throw invalid(`alg must be ${expected.stored.alg}, the algorithm of the key registered`);
    jwk = expected.stored.jwk;
  } else {
    jwk = dbscJwk(alg as DbscAlgorithm, header.jwk);
    if (!jwk) throw invalid(`jwk must be the public ${alg === 'ES256' ? 'P-256' : 'RSA (2048 bits or more)'} key, without private members`);
  }
  const signature = Buffer.from(encodedSignature, 'base64url');
  if (!signatureValid(alg as DbscAlgorithm, importKey(jwk), `${encodedHeader}.${encodedClaims}`, signature)) {
    throw invalid(
      expected.stored ? 'the signature does not verify with the key registered for this session' : 'the signature does not verify',
    );
  }
  const claims = decodeJson(encodedClaims);
  if (!claims) throw invalid('the claims are not a base64url JSON object');
  const { jti, authorization, aud } = claims;
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_CLAIM_LENGTH) throw invalid('jti must be the challenge, a string');
  if (authorization !== undefined && typeof authorization !== 'string') throw invalid('authorization must be a string');
  if (aud !== undefined && typeof aud !== 'string') throw invalid('aud must be a string');
  return {
    alg: alg as DbscAlgorithm,
    jwk,
    jkt: dbscThumbprint(jwk),
    claims: { jti, ...(authorization === undefined ? {} : { authorization }), ...(aud === undefined ? {} : { aud }) },
  };
}
