/**
 * Verifies a DPoP proof (RFC 9449 §4.3) with synchronous node:crypto. One function for the
 * handshake and for API routes; the checks run in the order docs/PROTOCOL.md gives. The replay
 * store is a separate, last step (`recordProof`), which callers take only once the request has
 * shown more than a self-made key: a valid access token on an API route, the secret on a
 * handshake. Otherwise anyone could fill the store with proofs of keys of their own.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { decodeBase64url } from '../../protocol/base64url.js';
import {
  DPOP_TYP,
  HANDSHAKE_CLAIM,
  decodeJsonObject,
  publicJwk,
  thumbprintInput,
  type DpopAlgorithm,
  type DpopClaims,
  type PublicJwk,
} from '../../protocol/dpop.js';
import { canonicalHtu } from '../../protocol/htu.js';
import { TokenSecError, type TokenSecErrorCode } from '../../protocol/errors.js';
import { nodeBase64url } from '../base64url.js';
import type { NonceSource } from './nonce.js';
import { callStore, type AtomicStore } from '../store.js';
import { replayKey } from './replay-store.js';

/** How proofs are checked, resolved from a middleware's options. */
export interface DpopVerifyOptions {
  algorithms: readonly DpopAlgorithm[];
  /** Seconds a proof stays acceptable after its `iat`. */
  maxAge: number;
  /** Seconds a proof's `iat` may lie in the future (clock skew). */
  clockSkew: number;
  /** Where proof ids are remembered (a 3.0 ReplayStore is wrapped into one when options are resolved). */
  replayStore: AtomicStore;
  /** Milliseconds a store call may take before the request gets 503 ERR_TOKENSEC_STORE_UNAVAILABLE. Default 1000. */
  storeTimeout?: number | undefined;
  nonce?: NonceSource | undefined;
  /** @deprecated Still accepted, undocumented, removed in 4.0: tests freeze the clock with vitest's fake timers (test/support/clock.ts). */
  now?: (() => number) | undefined;
}

/** What this request requires of the proof. */
export interface DpopExpectation {
  /** The request method. */
  method: string;
  /** The request URL, absolute, as the app sees it; a function of the proof's `htu` when the app serves several origins. */
  url?: string | ((htu: unknown) => string);
  /**
   * Instead of `url`: the URL already normalised (`canonicalHtu`'s output, or undefined when the
   * request has none), a function of the proof's `htu`. The middlewares pass this (request-target.ts).
   */
  target?: ((htu: unknown) => string | undefined) | undefined;
  /** On an API call: the access token the proof must hash into `ath`. */
  accessToken?: string | undefined;
  /** On a handshake: the handshake header value the proof must hash into `tsh`. */
  handshake?: string | undefined;
}

/** A proof that passed every check. */
export interface VerifiedProof {
  /** The key's RFC 7638 thumbprint, base64url: what a token's `cnf.jkt` names. */
  jkt: string;
  jwk: PublicJwk;
  alg: DpopAlgorithm;
  claims: DpopClaims;
}

/** RFC 9449's error for each failure, for WWW-Authenticate. */
export type DpopErrorName = 'invalid_dpop_proof' | 'use_dpop_nonce' | 'invalid_token';

/** A DPoP refusal: a 401 TokenSecError with RFC 9449's error name for `WWW-Authenticate` (none when no credentials came). */
export class DpopError extends TokenSecError {
  declare dpopError?: DpopErrorName;

  constructor(code: TokenSecErrorCode, message: string, name: DpopErrorName, cause?: unknown) {
    super(code, message, 401, cause === undefined ? undefined : { cause });
    this.dpopError = name;
  }
}

const MAX_PROOF_LENGTH = 8192;
/** A UTF-16 surrogate without its pair. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MAX_JTI_BYTES = 256;

export function dpopError(
  code:
    | 'ERR_TOKENSEC_DPOP_MISSING_PROOF'
    | 'ERR_TOKENSEC_DPOP_INVALID_PROOF'
    | 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF'
    | 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED'
    | 'ERR_TOKENSEC_DPOP_NONCE_STALE'
    | 'ERR_TOKENSEC_DPOP_INVALID_TOKEN',
  message: string,
  name: DpopErrorName,
  cause?: unknown,
): DpopError {
  return new DpopError(code, message, name, cause);
}

const invalid = (what: string) => dpopError('ERR_TOKENSEC_DPOP_INVALID_PROOF', `Invalid DPoP proof: ${what}.`, 'invalid_dpop_proof');

export const sha256Base64url = (text: string): string => createHash('sha256').update(text, 'utf8').digest('base64url');

/** The RFC 7638 thumbprint of a public JWK, base64url. */
export const jwkThumbprint = (jwk: PublicJwk): string => sha256Base64url(thumbprintInput(jwk));

/**
 * The request's one DPoP header, or undefined. RFC 9449 §4.3 allows exactly one: a second is an
 * error, not a value to pick from (Node joins repeated unknown headers, so the raw list is read).
 */
export function readProofHeader(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) {
    // A request object that is not node:http's (a framework's or a test's): only the parsed headers.
    const value: unknown = req.headers?.dpop;
    if (Array.isArray(value)) throw invalid('more than one DPoP header');
    return typeof value === 'string' ? value : undefined;
  }
  let found: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== 'dpop') continue;
    if (found !== undefined) throw invalid('more than one DPoP header');
    found = raw[i + 1];
  }
  return found;
}

/**
 * The request's one Authorization header, or undefined: two lines are refused (Node keeps the first
 * and drops the others, so the raw list is read), as two DPoP lines are.
 */
export function readAuthorizationHeader(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return req.headers?.authorization;
  let found: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== 'authorization') continue;
    if (found !== undefined) {
      throw dpopError('ERR_TOKENSEC_DPOP_INVALID_TOKEN', 'More than one Authorization header.', 'invalid_token');
    }
    found = raw[i + 1];
  }
  return found;
}

/** Imported keys by thumbprint: the thumbprint hashes every key member, so equal thumbprints are equal keys. */
const keyCache = new Map<string, KeyObject>();
const KEY_CACHE_SIZE = 1000;

function publicKeyFor(jkt: string, jwk: PublicJwk): KeyObject {
  const cached = keyCache.get(jkt);
  if (cached) {
    // Most recently used last, so the oldest is evicted first.
    keyCache.delete(jkt);
    keyCache.set(jkt, cached);
    return cached;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw invalid('the jwk is not a valid public key');
  }
  if (keyCache.size >= KEY_CACHE_SIZE) {
    const oldest = keyCache.keys().next().value;
    if (oldest !== undefined) keyCache.delete(oldest);
  }
  keyCache.set(jkt, key);
  return key;
}

const verifyEd25519 = (key: KeyObject, data: Buffer, signature: Uint8Array) => verify(null, data, key, signature);

/** Everything the verifier does differently per DPoP algorithm: nothing else here names one. */
const SIGNATURE: Record<DpopAlgorithm, { curve: string; verify(key: KeyObject, data: Buffer, signature: Uint8Array): boolean }> = {
  ES256: { curve: 'P-256', verify: (key, data, signature) => verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature) },
  EdDSA: { curve: 'Ed25519', verify: verifyEd25519 },
  Ed25519: { curve: 'Ed25519', verify: verifyEd25519 },
};

function signatureValid(alg: DpopAlgorithm, key: KeyObject, input: string, signature: Uint8Array): boolean {
  try {
    return SIGNATURE[alg].verify(key, Buffer.from(input), signature);
  } catch {
    return false;
  }
}

/** A proof header that passed every check, with what it names: the same for every proof of one key. */
export interface AcceptedHeader {
  alg: DpopAlgorithm;
  jwk: PublicJwk;
  /** The key's RFC 7638 thumbprint, base64url. */
  jkt: string;
  /** Imported; undefined when the JWK is no valid key (refused at the signature check, as before). */
  key: KeyObject | undefined;
}

/**
 * Accepted headers by their base64url text. A browser key signs every proof with byte-identical
 * header bytes, so a proof from a known key skips the decode, JSON.parse, checks, thumbprint and
 * key lookup (measured ~15 µs of the ~40 µs of glue per proof). Only accepted headers go in (a
 * refused one is checked in full each time, as before); a header is cached only up to
 * MAX_CACHED_HEADER characters (an ES256 header is ~230), so the cache holds at most ~1 MB. A
 * stranger sending new keys evicts the oldest entries: each of their proofs costs what an uncached
 * one always did, and a known key's next proof pays that once.
 */
const headerCache = new Map<string, AcceptedHeader>();
const HEADER_CACHE_SIZE = 1000;
const MAX_CACHED_HEADER = 1024;

/** For tests: how many headers are cached, and emptying the cache. */
export const headerCacheForTests = { size: () => headerCache.size, clear: () => headerCache.clear() };

/**
 * The proof's protected header checked: typ, alg from the allowlist, a public key of that
 * algorithm (no private member), imported. Throws the same refusals in the same order whether or
 * not the header was seen before; the allowlist, which differs between middlewares, is checked
 * on every call.
 */
export function checkProofHeader(encodedHeader: string, algorithms: readonly DpopAlgorithm[]): AcceptedHeader {
  const cached = headerCache.get(encodedHeader);
  if (cached !== undefined) {
    if (!algorithms.includes(cached.alg)) throw invalid(`alg must be one of ${algorithms.join(', ')}`);
    return cached;
  }
  const header = decodeJsonObject(encodedHeader, nodeBase64url);
  if (!header) throw invalid('the header is not a base64url JSON object');
  if (header.typ !== DPOP_TYP) throw invalid(`typ must be "${DPOP_TYP}"`);
  const alg = header.alg;
  if (typeof alg !== 'string' || !(algorithms as readonly string[]).includes(alg)) {
    throw invalid(`alg must be one of ${algorithms.join(', ')}`);
  }
  if ('crit' in header) throw invalid('crit is not supported');
  const jwk = publicJwk(alg as DpopAlgorithm, header.jwk, nodeBase64url);
  if (!jwk) throw invalid(`jwk must be exactly the public ${SIGNATURE[alg as DpopAlgorithm].curve} key (no private member)`);
  const jkt = jwkThumbprint(jwk);
  let key: KeyObject | undefined;
  try {
    key = publicKeyFor(jkt, jwk);
  } catch {
    key = undefined;
  }
  // Frozen: every later proof of this key returns this same jwk object.
  const accepted: AcceptedHeader = { alg: alg as DpopAlgorithm, jwk: Object.freeze(jwk), jkt, key };
  if (key !== undefined && encodedHeader.length <= MAX_CACHED_HEADER) {
    if (headerCache.size >= HEADER_CACHE_SIZE) {
      const oldest = headerCache.keys().next().value;
      if (oldest !== undefined) headerCache.delete(oldest);
    }
    headerCache.set(encodedHeader, accepted);
  }
  return accepted;
}

/** A proof split into its parts, with its header checked: what the signature check needs. */
export interface SplitProof {
  header: AcceptedHeader;
  /** The first two parts as sent: what was signed. */
  signingInput: string;
  encodedClaims: string;
  encodedSignature: string;
}

/** The first steps of checkDpopProof: present, not too long, three parts, an accepted header. */
export function splitProof(proof: string | undefined, options: Pick<DpopVerifyOptions, 'algorithms'>): SplitProof {
  if (proof === undefined || proof === '')
    throw dpopError('ERR_TOKENSEC_DPOP_MISSING_PROOF', 'DPoP proof missing: send one in the DPoP header.', 'invalid_dpop_proof');
  if (proof.length > MAX_PROOF_LENGTH) throw invalid(`longer than ${MAX_PROOF_LENGTH} characters`);
  const first = proof.indexOf('.');
  const second = first === -1 ? -1 : proof.indexOf('.', first + 1);
  // Exactly three parts, the signature not empty (as `split('.')` into three did).
  if (second === -1 || second === proof.length - 1 || proof.indexOf('.', second + 1) !== -1) {
    throw invalid('not a compact JWS of three parts');
  }
  const header = checkProofHeader(proof.slice(0, first), options.algorithms);
  return {
    header,
    signingInput: proof.slice(0, second),
    encodedClaims: proof.slice(first + 1, second),
    encodedSignature: proof.slice(second + 1),
  };
}

/** The signature over the first two parts as sent; throws the refusal checkDpopProof gives. */
export function checkProofSignature(header: AcceptedHeader, signingInput: string, encodedSignature: string): void {
  const signature = decodeBase64url(encodedSignature, nodeBase64url);
  if (!signature) throw invalid('the signature does not verify');
  // A JWK that is no valid key is refused here, after a bad signature encoding, as it always was.
  const key = header.key ?? publicKeyFor(header.jkt, header.jwk);
  if (!signatureValid(header.alg, key, signingInput, signature)) throw invalid('the signature does not verify');
}

/**
 * The same check for a worker thread, which has the key as a JWK: the key is imported there (and
 * cached by thumbprint). Returns the refusal's message, or undefined when the signature verifies.
 */
export function proofSignatureProblem(alg: DpopAlgorithm, jwk: PublicJwk, jkt: string, signingInput: string, encodedSignature: string) {
  try {
    checkProofSignature({ alg, jwk, jkt, key: undefined }, signingInput, encodedSignature);
    return undefined;
  } catch (error) {
    return error instanceof TokenSecError ? error.message : 'Invalid DPoP proof: the signature does not verify.';
  }
}

/** The refusal of a signature found bad on a worker thread: the one checkProofSignature throws. */
export const badSignature = (): DpopError => invalid('the signature does not verify');

/**
 * Checks a DPoP proof against this request, all but its one-time use (see `recordProof`); returns
 * the key's thumbprint and the claims, or throws a 401 TokenSecError (`dpopError` names RFC 9449's
 * error for WWW-Authenticate).
 *
 * @example
 * ```ts
 * const proof = checkDpopProof(readProofHeader(req), { method: 'GET', url: 'https://api.example/me', accessToken }, options);
 * ```
 */
export function checkDpopProof(proof: string | undefined, expected: DpopExpectation, options: DpopVerifyOptions): VerifiedProof {
  const split = splitProof(proof, options);
  checkProofSignature(split.header, split.signingInput, split.encodedSignature);
  return checkProofClaims(split, expected, options);
}

/** The claims of a proof whose signature verified: this request, now, once. */
export function checkProofClaims(
  { header: { jkt, jwk, alg }, encodedClaims }: Pick<SplitProof, 'header' | 'encodedClaims'>,
  expected: DpopExpectation,
  options: DpopVerifyOptions,
): VerifiedProof {
  const claims = decodeJsonObject(encodedClaims, nodeBase64url);
  if (!claims) throw invalid('the claims are not a base64url JSON object');
  const { jti, htm, htu, iat } = claims;
  // Bytes of UTF-8, a unit every implementation counts alike (docs/PROTOCOL.md, "The proof"); a
  // lone surrogate (a "\ud800" escape) has no UTF-8 form, and Buffer.byteLength would count its replacement.
  if (typeof jti !== 'string' || jti === '' || LONE_SURROGATE.test(jti) || Buffer.byteLength(jti) > MAX_JTI_BYTES)
    throw invalid(`jti must be a well-formed string of 1 to ${MAX_JTI_BYTES} bytes of UTF-8`);
  if (htm !== expected.method) throw invalid('htm is not this request method');
  const target = expectedHtu(expected, htu);
  // The message names what this server expected (never the proof's value): behind a proxy, the fix is the "origin" option.
  if (target === undefined) throw invalid('this server has no absolute http(s) URL for this request; set the "origin" or "url" option');
  // A proof names the URL as the browser spells it, which is already normal: equal strings need no parse.
  if (typeof htu !== 'string' || (htu !== target && canonicalHtu(htu) !== target)) {
    throw invalid(`htu must be ${target}, the URL this server expects for this request (behind a proxy, set the "origin" option)`);
  }
  const now = Math.floor((options.now ?? Date.now)() / 1000);
  // Any JSON spelling of a whole number (1767225600, 1767225600.0, 1.7672256e9), up to 2^53 − 1.
  if (typeof iat !== 'number' || !Number.isSafeInteger(iat)) throw invalid('iat must be a whole number of seconds');
  if (iat > now + options.clockSkew) throw invalid('iat is in the future');
  if (iat < now - options.maxAge) throw invalid('iat is too old');
  if (expected.accessToken !== undefined && claims.ath !== sha256Base64url(expected.accessToken))
    throw invalid('ath is not the hash of this access token');
  if (expected.handshake !== undefined && claims[HANDSHAKE_CLAIM] !== sha256Base64url(expected.handshake)) {
    throw invalid(`${HANDSHAKE_CLAIM} is not the hash of this handshake header`);
  }
  const nonceProblem = options.nonce?.problem(claims.nonce);
  if (nonceProblem === 'stale') {
    throw dpopError(
      'ERR_TOKENSEC_DPOP_NONCE_STALE',
      'DPoP proof with a server nonce whose time has passed: use the DPoP-Nonce header of this answer.',
      'use_dpop_nonce',
    );
  }
  if (nonceProblem) {
    throw dpopError(
      'ERR_TOKENSEC_DPOP_NONCE_REQUIRED',
      'DPoP proof without a current server nonce: use the DPoP-Nonce header.',
      'use_dpop_nonce',
    );
  }
  return { jkt, jwk, alg, claims: claims as unknown as DpopClaims };
}

/** The normalised URL `htu` must name: `expected.target` when the caller has it, else `expected.url` normalised. */
function expectedHtu(expected: DpopExpectation, htu: unknown): string | undefined {
  if (expected.target !== undefined) return expected.target(htu);
  return canonicalHtu(typeof expected.url === 'function' ? expected.url(htu) : (expected.url ?? ''));
}

/**
 * The last check: the proof's `jti` is recorded for as long as the proof could be accepted
 * (`maxAge + clockSkew`), owned by its key, and a second use is refused. A store that fails,
 * times out or is full gives its own 503 (a 429 for a key over its share), never "replayed".
 */
export async function recordProof(proof: VerifiedProof, options: DpopVerifyOptions): Promise<void> {
  const { replayStore: store, maxAge, clockSkew, storeTimeout = 1000 } = options;
  const key = replayKey(proof.jkt, proof.claims.jti);
  // `since`: the proof could have been accepted from iat − clockSkew on (a store that lost its data after that refuses it).
  const since = proof.claims.iat - clockSkew;
  const earlier = await callStore(() => store.addIfAbsent(key, '1', maxAge + clockSkew, proof.jkt, since), storeTimeout);
  if (earlier !== undefined) {
    throw dpopError('ERR_TOKENSEC_DPOP_REPLAYED_PROOF', 'DPoP proof already used (same jti).', 'invalid_dpop_proof');
  }
}

/** The longest a key is marked bound for: a day, as long as the default session binding lives. */
const MAX_BOUND_TTL = 86_400;

/**
 * Tells the replay store that this key is bound (AtomicStore.markBound) for `ttlSeconds` (1 s to
 * a day), before its proof id is recorded, so that a full store keeps room for it. Undefined when
 * the store has no markBound or answered at once (memoryStore()); else the call under the store
 * time limit.
 */
export function markKeyBound(jkt: string, ttlSeconds: number, options: DpopVerifyOptions): Promise<void> | undefined {
  const store = options.replayStore;
  if (typeof store.markBound !== 'function') return undefined;
  const ttl = Math.max(1, Math.min(MAX_BOUND_TTL, Math.ceil(ttlSeconds)));
  let answer: unknown;
  try {
    answer = store.markBound(jkt, ttl);
  } catch (cause) {
    return callStore(() => Promise.reject(cause), options.storeTimeout ?? 1000);
  }
  if (typeof (answer as { then?: unknown } | undefined)?.then !== 'function') return undefined;
  return callStore(() => answer as Promise<void>, options.storeTimeout ?? 1000);
}

/** `WWW-Authenticate: DPoP ...` for a refusal (RFC 9449 §7.1); no error attribute when no credentials came (RFC 6750 §3.1). */
export function wwwAuthenticate(algorithms: readonly string[], error?: DpopErrorName, description?: string): string {
  const parts = [`algs="${algorithms.join(' ')}"`];
  if (error) parts.unshift(`error="${error}"`);
  if (error && description) parts.splice(1, 0, `error_description="${description.replace(/["\\]/g, '')}"`);
  return `DPoP ${parts.join(', ')}`;
}

/** Puts RFC 9449's challenge (and a fresh nonce when one is asked for) on a 401, in `err.headers`. */
export function withChallenge(error: unknown, verify: DpopVerifyOptions): unknown {
  if (!(error instanceof TokenSecError) || error.status !== 401) return error;
  const name = error instanceof DpopError ? error.dpopError : undefined;
  const headers: Record<string, string> = { 'WWW-Authenticate': wwwAuthenticate(verify.algorithms, name, error.message) };
  if (name === 'use_dpop_nonce' && verify.nonce) headers['DPoP-Nonce'] = verify.nonce.current();
  error.headers = { ...error.headers, ...headers };
  return error;
}
