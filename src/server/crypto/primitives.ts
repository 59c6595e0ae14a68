/**
 * The server's half of protocol v3 (docs/PROTOCOL.md), on synchronous node:crypto: Node's async
 * WebCrypto path measured about 4x slower for the same work.
 */
import {
  createCipheriv,
  createECDH,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomFillSync,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { TokenSecError } from '../../protocol/errors.js';
import { LONE_SURROGATE, bindingInput, keyContext, utf8, type RequestTarget } from '../../protocol/context.js';
import { IV_LENGTH, MAX_PAYLOAD_BYTES, formatResponse, type Algorithm, type HandshakeRequest } from '../../protocol/wire.js';
import { nodeBase64url } from '../base64url.js';

// Raw X25519 keys go in and out of node:crypto as JWK: measured on Node 20 / OpenSSL 3, a JWK
// import is ~21 µs where the DER SubjectPublicKeyInfo import is ~210 µs, and exporting a public
// key as JWK ~9 µs where createPublicKey(privateKey).export('spki') is ~205 µs.

/**
 * A fresh X25519 private key: 32 bytes from the CSPRNG, which is all an X25519 private key is
 * (RFC 7748 §5 clamps them). Not generateKeyPairSync: on Node 20 a key it made can deadlock the
 * process when exported as JWK, if garbage collection finalizes the key-generation job during
 * the export (both take the key's mutex; seen here, see test/stress/deadlock.test.ts). Node requires an
 * `x` member in a private JWK but derives the public key from `d`.
 */
function x25519PrivateKey(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(raw).toString('base64url'), x: '' }, format: 'jwk' });
}

/**
 * Random bytes for keys and IVs, taken from a buffer filled `size` bytes at a time: one CSPRNG
 * call costs ~5 µs whatever its size. Bytes handed out are wiped from the buffer at once, so no
 * key material outlives its handshake there.
 */
export class RandomPool {
  /** Exposed for the test that checks the wiping. */
  readonly buffer: Buffer;
  private offset: number;

  constructor(size = 4096) {
    this.buffer = Buffer.alloc(size);
    this.offset = size;
  }

  take(length: number): Buffer {
    if (this.offset + length > this.buffer.length) {
      randomFillSync(this.buffer);
      this.offset = 0;
    }
    const bytes = Buffer.from(this.buffer.subarray(this.offset, this.offset + length));
    this.buffer.fill(0, this.offset, this.offset + length);
    this.offset += length;
    return bytes;
  }
}

const randomPool = new RandomPool();
export const pooledRandomBytes = (length: number): Buffer => randomPool.take(length);

export function hmacSha256(key: Uint8Array, data: Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/**
 * HKDF-SHA256 (RFC 5869) from two HMACs for a 32-byte key: cheaper than hkdfSync, and without
 * its 1024-byte limit on `info` (our info holds the request path). Every intermediate buffer (the
 * PRK, each T(i) block) is wiped before it returns; only the output stays, in a buffer of its own.
 * `trace`: for the test that checks the wiping, receives each intermediate buffer.
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number, trace?: Uint8Array[]): Buffer {
  const prk = hmacSha256(salt, ikm);
  trace?.push(prk);
  const okm = Buffer.alloc(length);
  let previous = Buffer.alloc(0);
  try {
    for (let counter = 1, offset = 0; offset < length; counter++) {
      const block = createHmac('sha256', prk).update(previous).update(info).update(Uint8Array.of(counter)).digest();
      trace?.push(block);
      previous.fill(0);
      offset += block.copy(okm, offset);
      previous = block;
    }
  } finally {
    prk.fill(0);
    previous.fill(0);
  }
  return okm;
}

/** An ephemeral server key pair: its raw public key, and ECDH with a client's raw public key. */
export interface ServerKeyPair {
  algorithm: Algorithm;
  publicKey: Uint8Array;
  /**
   * Throws ERR_TOKENSEC_INVALID_PUBLIC_KEY for a point that is not on the curve or of small order.
   * `peerBase64url`: the same key as canonical base64url, when the caller has it (the header's).
   */
  deriveSharedSecret(peerPublicKey: Uint8Array, peerBase64url?: string): Buffer;
}

const invalidKey = (algorithm: Algorithm) =>
  new TokenSecError('ERR_TOKENSEC_INVALID_PUBLIC_KEY', `Invalid ${algorithm} public key in TokenSec handshake.`, 400);

function x25519KeyPair(privateKey: KeyObject): ServerKeyPair {
  return {
    algorithm: 'x25519',
    // A private key's JWK carries its public key: no second key object to make.
    publicKey: Buffer.from(privateKey.export({ format: 'jwk' }).x!, 'base64url'),
    deriveSharedSecret(peer, peerBase64url = Buffer.from(peer).toString('base64url')) {
      let secret: Buffer;
      try {
        const peerKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerBase64url }, format: 'jwk' });
        secret = diffieHellman({ privateKey, publicKey: peerKey });
      } catch {
        throw invalidKey('x25519');
      }
      // A small-order point gives an all-zero secret (RFC 7748 §6.1): refuse it, or the key
      // would depend on public values only.
      if (secret.every((byte) => byte === 0)) throw invalidKey('x25519');
      return secret;
    },
  };
}

function p256KeyPair(privateKey?: Uint8Array): ServerKeyPair {
  const ecdh = createECDH('prime256v1');
  if (privateKey) ecdh.setPrivateKey(privateKey);
  else ecdh.generateKeys();
  return {
    algorithm: 'p256',
    publicKey: ecdh.getPublicKey(),
    deriveSharedSecret(peer) {
      try {
        return ecdh.computeSecret(peer); // validates that the point is on the curve
      } catch {
        throw invalidKey('p256');
      }
    },
  };
}

/** Everything the server does differently per key-agreement algorithm: nothing else names them. */
const KEY_AGREEMENT: Record<Algorithm, { generate(): ServerKeyPair; import(rawPrivateKey: Uint8Array): ServerKeyPair }> = {
  x25519: {
    generate: () => x25519KeyPair(x25519PrivateKey(pooledRandomBytes(32))),
    import: (raw) => x25519KeyPair(x25519PrivateKey(raw)),
  },
  p256: { generate: () => p256KeyPair(), import: (raw) => p256KeyPair(raw) },
};

export function generateServerKeyPair(algorithm: Algorithm): ServerKeyPair {
  return KEY_AGREEMENT[algorithm].generate();
}

/** A key pair from a fixed private key: for the test vectors of docs/PROTOCOL.md only. */
export function importServerKeyPair(algorithm: Algorithm, rawPrivateKey: Uint8Array): ServerKeyPair {
  return KEY_AGREEMENT[algorithm].import(rawPrivateKey);
}

/**
 * Checks the request's binding: proof that the client holds the same secret. Throws 403. The
 * secret as UTF-8 bytes is the caller's (a handshake encodes it once for the binding and HKDF) and
 * left as it is; as a string, its bytes are made and wiped here.
 */
export function verifyBinding(request: HandshakeRequest, secret: string | Uint8Array, target: RequestTarget): void {
  const key = typeof secret === 'string' ? utf8(secret) : secret;
  const expected = hmacSha256(key, bindingInput(request.algorithm, request.publicKey, target));
  if (key !== secret) key.fill(0);
  let equal: boolean;
  try {
    equal = timingSafeEqual(expected, request.binding);
  } finally {
    expected.fill(0);
  }
  if (!equal) {
    throw new TokenSecError(
      'ERR_TOKENSEC_SECRET_MISMATCH',
      'TokenSec handshake was not made with the secret this server expects (or was sent to another method or path).',
      403,
    );
  }
}

/** What the response key is derived from. */
export interface KeyInput {
  /** The client's algorithm and public key, from its request header. */
  request: Pick<HandshakeRequest, 'algorithm'> & { publicKey: Uint8Array };
  /** The server's ephemeral public key, raw. */
  serverPublicKey: Uint8Array;
  /** ECDH(server private key, client public key), computed first so a bad key is refused early. */
  sharedSecret: Uint8Array;
  /** The secret the binding was checked with; it salts HKDF. As UTF-8 bytes, the caller's to wipe. */
  secret: string | Uint8Array;
  target: RequestTarget;
  /** For the test that checks the wiping: receives each intermediate buffer of the derivation. */
  trace?: Uint8Array[] | undefined;
}

/** The AES-256-GCM key of one response, and what it is bound to. Single use. */
export interface ResponseKey {
  serverPublicKey: Uint8Array;
  /** HKDF-SHA256 output; wiped by encryptPayload. */
  key: Uint8Array;
  /** The key context: HKDF `info`, and the ciphertext's additional data. */
  context: Uint8Array;
}

/**
 * HKDF-SHA256 salted with the secret, over the key context. Needs no payload, so it can run before
 * one exists. Wipes `sharedSecret` (it has no other use), the secret's bytes and every
 * intermediate buffer of HKDF: only the response key is left.
 */
export function deriveResponseKey({ request, serverPublicKey, sharedSecret, secret, target, trace }: KeyInput): ResponseKey {
  const context = keyContext(request.algorithm, request.publicKey, serverPublicKey, target);
  const salt = typeof secret === 'string' ? utf8(secret) : secret;
  trace?.push(salt);
  try {
    return { serverPublicKey, key: hkdfSha256(sharedSecret, salt, context, 32, trace), context };
  } finally {
    sharedSecret.fill(0);
    if (salt !== secret) salt.fill(0);
  }
}

/**
 * Encrypts the payload with a response key (AES-256-GCM, a random 96-bit IV), then wipes the key.
 * Returns the response value, whose size it bounds.
 */
export function encryptPayload(
  { serverPublicKey, key, context }: ResponseKey,
  payload: string,
  iv: Uint8Array = pooledRandomBytes(IV_LENGTH),
): string {
  let cipher;
  try {
    if (LONE_SURROGATE.test(payload)) {
      throw new TokenSecError(
        'ERR_TOKENSEC_INVALID_PAYLOAD',
        'TokenSec payload has an unpaired surrogate: it has no exact UTF-8 encoding.',
        500,
      );
    }
    if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
      throw new TokenSecError(
        'ERR_TOKENSEC_PAYLOAD_TOO_LARGE',
        `TokenSec payload is larger than ${MAX_PAYLOAD_BYTES} bytes of UTF-8.`,
        500,
      );
    }
    cipher = createCipheriv('aes-256-gcm', key, iv);
  } finally {
    key.fill(0); // the cipher holds its own copy
  }
  cipher.setAAD(context);
  const ciphertext = Buffer.concat([cipher.update(payload, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return formatResponse({ publicKey: serverPublicKey, iv, ciphertext }, nodeBase64url);
}
