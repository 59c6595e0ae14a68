/**
 * The browser's DPoP key (RFC 9449) and proofs. The key pair is made by Web Crypto with a
 * non-extractable private key and kept in IndexedDB (a CryptoKeyPair survives structured clone and
 * stays non-extractable), so it outlives reloads, and script can use it but never copy it. Where
 * IndexedDB is missing (Node, some private modes) the key lives in memory for the page's life.
 *
 * Any script of the origin can write that IndexedDB record, so a stored key is only ever used as
 * it is, never trusted: a key becomes bound to a new session only when this run of the client made
 * it (`madeHere`, in memory; the handshake then sends the claim `tsb`). Proofs' `iat` follows the
 * server's clock, learnt from the `Date` of its answers (`syncClock`).
 */
import { portableBase64url } from '../src/protocol/base64url.js';
import { utf8 } from '../src/protocol/context.js';
import { DPOP_NONCE_HEADER, DPOP_TYP, encodeJson, normalizeHtu, type PublicJwk } from '../src/protocol/dpop.js';
import { TokenSecError } from '../src/protocol/errors.js';
import { DPOP_SIGNATURE, isRow, type ClientDpopAlgorithm } from './algorithms.js';
import { subtleCrypto } from './crypto.js';
import { fail } from './fail.js';

export type { ClientDpopAlgorithm };

/**
 * Web Crypto's `CryptoKey` where the DOM lib is loaded; an opaque object otherwise, so that these
 * types compile in a project without the DOM lib (a server that also imports the client).
 */
export type WebCryptoKey = typeof globalThis extends {
  /** Web Crypto's key class, where the DOM lib declares it. */
  CryptoKey: {
    /** The type of its instances. */
    prototype: infer Key;
  };
}
  ? Key
  : object;

/**
 * The page's DPoP key.
 *
 * @example
 * ```js
 * const { thumbprint, algorithm } = await TokenSec.getDpopKey();
 * ```
 */
export interface DpopKey {
  /** The proof signature algorithm: `ES256` or `EdDSA`. */
  algorithm: ClientDpopAlgorithm;
  /** Non-extractable: script can sign with it, never read it. */
  privateKey: WebCryptoKey;
  /** The public half, which verifies the proofs. */
  publicKey: WebCryptoKey;
  /** The public key as a JWK, with only the members RFC 7638 hashes. */
  jwk: PublicJwk;
  /** RFC 7638 thumbprint, base64url: what the token's `cnf.jkt` must be. */
  thumbprint: string;
}

/**
 * Which key `getDpopKey()` makes when there is none yet.
 *
 * @example
 * ```js
 * const key = await TokenSec.getDpopKey({ algorithm: 'EdDSA' });
 * ```
 */
export interface DpopKeyOptions {
  /** Default ES256. A stored key of another algorithm is kept until `rotateDpopKey()`. */
  algorithm?: ClientDpopAlgorithm;
}

/**
 * What a proof is for.
 *
 * @example
 * ```js
 * const proof = await TokenSec.createDpopProof({ method: 'GET', url: '/api/me', accessToken: token });
 * fetch('/api/me', { headers: { Authorization: `DPoP ${token}`, DPoP: proof } });
 * ```
 */
export interface DpopProofInput {
  /** The request's HTTP method (`htm`), e.g. `GET`. */
  method: string;
  /** The request URL; a relative one is resolved against the page. Query and fragment are dropped. */
  url: string | URL;
  /** The access token sent with the request: the proof then carries its hash (`ath`). */
  accessToken?: string;
  /** A nonce the server sent in `DPoP-Nonce`. Default: the latest one the URL's origin sent to this client. */
  nonce?: string;
  /** Extra claims (the handshake adds `tsh`, and `tsb` for a key made in this run). */
  claims?: Record<string, string | boolean>;
  /** The key to sign with. Default: `getDpopKey()`. */
  key?: DpopKey;
}

const STORE = 'keys';
const RECORD = 'dpop';
/** A key pair as stored in IndexedDB (or in memory without it). */
interface KeyRecord {
  algorithm: ClientDpopAlgorithm;
  pair: CryptoKeyPair;
}
let memory: KeyRecord | undefined;
let pending: Promise<unknown> | undefined;
/** Thumbprints of the keys this run of the client made: the only ones it asks a server to bind. */
export const madeHere = new Set<string>();
/** Milliseconds to add to the browser's clock to get the server's (`syncClock`). */
let clockOffset = 0;
/** The latest DPoP-Nonce each origin sent (RFC 9449 §8): proofs to that origin carry it. */
const nonces: Record<string, string> = {};

/**
 * Learns the server's clock from the `Date` header of one of its answers; proofs' `iat` then
 * follows it, so a browser clock that is minutes off does not get proofs refused. Keeps the
 * answer's `DPoP-Nonce` for `origin`, the origin that answered.
 */
export function syncClock(response: Response, origin: string): void {
  const date = Date.parse(response.headers.get('date')!);
  const nonce = response.headers.get(DPOP_NONCE_HEADER);
  if (date) clockOffset = date - Date.now();
  if (nonce) nonces[origin] = nonce;
}

/** SHA-256 of a string's UTF-8, base64url: a thumbprint, `ath`, `tsh`. */
export const sha256 = async (text: string): Promise<string> =>
  portableBase64url.encode(new Uint8Array(await subtleCrypto().digest('SHA-256', utf8(text))));

/** The URL `url` names, a relative one resolved against the page's; undefined when it names none. */
export function resolveUrl(url: string | URL): URL | undefined {
  try {
    return new URL(url, globalThis.location?.href);
  } catch {
    return undefined;
  }
}

/** Runs one request on the key store in its own transaction; resolves when the transaction commits. */
function withStore<T>(mode: IDBTransactionMode, request: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('tokensec', 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const transaction = db.transaction(STORE, mode);
      const result = request(transaction.objectStore(STORE));
      transaction.oncomplete = () => {
        db.close();
        resolve(result.result);
      };
      // A failed request's error event reaches the transaction before the abort sets
      // transaction.error, so the request's own error is the one to report.
      transaction.onerror = transaction.onabort = () => {
        db.close();
        reject((result.readyState === 'done' && result.error) || transaction.error);
      };
    };
  });
}

const hasIndexedDb = () => typeof indexedDB !== 'undefined';

/** The stored record: whatever script of the origin wrote there, checked by `usable` before use. */
async function load(): Promise<KeyRecord | undefined> {
  if (!hasIndexedDb()) return memory;
  return withStore<KeyRecord | undefined>('readonly', (store) => store.get(RECORD));
}

/**
 * Whether a stored record is a key pair as `create` makes it: a non-extractable private key of the
 * record's algorithm (and curve) and the public key that verifies its signature. Web Crypto refuses
 * to sign or verify with anything but CryptoKeys of the right type, algorithm and usage, and with
 * the parameters DPOP_SIGNATURE gives another algorithm name (none, or an inherited member). Anything
 * else, written by other script, is replaced by a new key. A well-formed record is used as it is:
 * who wrote it cannot be told, which is why a stored key is never sent with `tsb`.
 */
async function usable({ algorithm, pair: { privateKey, publicKey } }: KeyRecord): Promise<boolean> {
  const params = DPOP_SIGNATURE[algorithm];
  const data = utf8('');
  return (
    !privateKey.extractable &&
    (privateKey.algorithm as Partial<EcKeyAlgorithm>).namedCurve === params.namedCurve &&
    (await subtleCrypto().verify(params, publicKey, await subtleCrypto().sign(params, privateKey, data), data))
  );
}

/** Stores a new key; with `replace: false` an existing one wins (another tab made it first). */
async function save(record: KeyRecord, replace: boolean): Promise<KeyRecord> {
  if (!hasIndexedDb()) return (memory = replace ? record : (memory ?? record));
  try {
    await withStore('readwrite', (store) => (replace ? store.put(record, RECORD) : store.add(record, RECORD)));
    return record;
  } catch (error) {
    if (!replace && (error as DOMException | null)?.name === 'ConstraintError') return (await load()) ?? record;
    throw error;
  }
}

async function describeKey({ algorithm, pair: { privateKey, publicKey } }: KeyRecord): Promise<DpopKey> {
  // The members RFC 7638 hashes (y only for EC), in its order: JSON.stringify(jwk) is then
  // thumbprintInput(jwk), without a second copy of that function in the bundle. usable() has
  // checked the key's algorithm and curve.
  const { kty, crv, x, y } = (await subtleCrypto().exportKey('jwk', publicKey)) as Record<string, string>;
  const jwk = { crv, kty, x, y } as PublicJwk;
  return { algorithm, privateKey, publicKey, jwk, thumbprint: await sha256(JSON.stringify(jwk)) };
}

async function create(algorithm: ClientDpopAlgorithm, replace: boolean): Promise<DpopKey> {
  if (!isRow(DPOP_SIGNATURE, algorithm)) throw fail('INVALID_OPTIONS', 'Bad DPoP algorithm');
  const subtle = subtleCrypto(); // (outside the try: no crypto.subtle is ERR_TOKENSEC_INSECURE_CONTEXT)
  let pair: CryptoKeyPair;
  try {
    pair = (await subtle.generateKey(DPOP_SIGNATURE[algorithm], false, ['sign', 'verify'])) as CryptoKeyPair;
  } catch (cause) {
    throw fail('UNSUPPORTED_BROWSER', `No ${algorithm} in Web Crypto`, { cause });
  }
  const record = { algorithm, pair };
  const saved = await save(record, replace);
  const key = await describeKey(saved);
  // With replace false, another tab's key may have won: that one was not made here.
  if (saved === record) madeHere.add(key.thumbprint);
  return key;
}

/** Runs key work one at a time in this page, so concurrent callers share one key. */
function serially<T>(work: () => Promise<T>): Promise<T> {
  const next = (pending ?? Promise.resolve()).then(work, work);
  pending = next.catch(() => undefined);
  return next.catch((cause: unknown) => {
    throw cause instanceof TokenSecError ? cause : fail('DPOP_KEY_UNAVAILABLE', 'DPoP key store failed', { cause });
  });
}

/**
 * The page's DPoP key: the stored one, or a new one made and stored. Concurrent callers share one.
 * A stored record that is not a usable key pair (see `usable`) is replaced by a new key.
 *
 * @example
 * ```js
 * const { thumbprint } = await TokenSec.getDpopKey(); // the jkt the server binds tokens to
 * ```
 */
export function getDpopKey(options: DpopKeyOptions = {}): Promise<DpopKey> {
  return serially(async () => {
    const stored = await load();
    // (A record that is not even a key pair makes usable() throw: unusable too.)
    if (stored && (await usable(stored).catch(() => false))) return describeKey(stored);
    // None yet (if another tab stores one meanwhile, that one wins), or a bad record: replaced.
    return create(options.algorithm ?? 'ES256', !!stored);
  });
}

/**
 * Replaces the page's DPoP key with a new one, made in this run: the key to bind at login (send
 * its thumbprint with the login form). Tokens bound to the old key stop working, and a session
 * bound to the old key refuses the new one until the session is bound again (log in again).
 *
 * @example
 * ```js
 * await TokenSec.rotateDpopKey();
 * ```
 */
export function rotateDpopKey(options: DpopKeyOptions = {}): Promise<DpopKey> {
  return serially(() => create(options.algorithm ?? 'ES256', true));
}

/**
 * Deletes the page's DPoP key (on logout); the next `getDpopKey()` makes a new one.
 *
 * @example
 * ```js
 * await TokenSec.deleteDpopKey();
 * ```
 */
export async function deleteDpopKey(): Promise<void> {
  await serially(async () => {
    memory = undefined;
    if (hasIndexedDb()) await withStore('readwrite', (store) => store.delete(RECORD));
  });
}

/**
 * A DPoP proof (RFC 9449 §4) for one request: a JWS with typ dpop+jwt, the public key, and the
 * claims jti, htm, htu, iat (and ath, nonce, extra claims when given).
 *
 * @example
 * ```js
 * const proof = await TokenSec.createDpopProof({ method: 'POST', url: 'https://api.example/orders', accessToken: token });
 * ```
 */
export async function createDpopProof(input: DpopProofInput): Promise<string> {
  const key = input?.key ?? (await getDpopKey());
  const url = resolveUrl(input.url);
  const htu = url && normalizeHtu(url.href);
  if (!htu || typeof input.method !== 'string') throw fail('INVALID_OPTIONS', 'Bad DPoP method or url');
  const jti = portableBase64url.encode(crypto.getRandomValues(new Uint8Array(16)));
  const claims: Record<string, unknown> = {
    ...input.claims,
    jti,
    htm: input.method.toUpperCase(),
    htu,
    iat: Math.floor((Date.now() + clockOffset) / 1000),
    // (JSON leaves out a member whose value is undefined: no nonce, no ath.)
    nonce: input.nonce ?? nonces[url!.origin],
  };
  if (input.accessToken !== undefined) claims.ath = await sha256(input.accessToken);
  const signingInput = `${encodeJson({ typ: DPOP_TYP, alg: key.algorithm, jwk: key.jwk })}.${encodeJson(claims)}`;
  // Web Crypto's ECDSA signature is r || s, the JWS form (RFC 7518 §3.4).
  const signature = await subtleCrypto().sign(DPOP_SIGNATURE[key.algorithm], key.privateKey, utf8(signingInput));
  return `${signingInput}.${portableBase64url.encode(new Uint8Array(signature))}`;
}
