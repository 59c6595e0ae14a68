/**
 * The browser's half of protocol v2 (docs/PROTOCOL.md), on Web Crypto. Private keys are created
 * non-extractable: script can use them through crypto.subtle but never read their bytes.
 */
import { TokenSecError } from '../src/protocol/errors.js';
import { bindingInput, keyContext, utf8, type RequestTarget } from '../src/protocol/context.js';
import { formatRequest, parseResponse, type Algorithm } from '../src/protocol/wire.js';

/** One handshake's ephemeral key pair and its raw public key. */
export interface ClientKeys {
  algorithm: Algorithm;
  privateKey: CryptoKey;
  publicKey: Uint8Array<ArrayBuffer>;
}

export const webCryptoAlgorithm = (algorithm: Algorithm): { name: string; namedCurve?: string } =>
  algorithm === 'x25519' ? { name: 'X25519' } : { name: 'ECDH', namedCurve: 'P-256' };

/** A fresh key pair: the given algorithm, or X25519 where the browser has it (Chrome 133, Firefox 130, Safari 17) and P-256 otherwise. */
export async function createKeys(subtle: SubtleCrypto, algorithm?: Algorithm): Promise<ClientKeys> {
  for (const candidate of algorithm ? [algorithm] : (['x25519', 'p256'] as const)) {
    try {
      const pair = (await subtle.generateKey(webCryptoAlgorithm(candidate), false, ['deriveBits'])) as CryptoKeyPair;
      return { algorithm: candidate, privateKey: pair.privateKey, publicKey: new Uint8Array(await subtle.exportKey('raw', pair.publicKey)) };
    } catch {
      // not supported here: try the next one
    }
  }
  throw new TokenSecError('ERR_TOKENSEC_UNSUPPORTED_BROWSER', 'No X25519 or P-256');
}

/** The request header value: version, algorithm, public key and HMAC(secret, binding input). */
export async function requestHeader(subtle: SubtleCrypto, keys: ClientKeys, secret: string, target: RequestTarget): Promise<string> {
  const hmacKey = await subtle.importKey('raw', utf8(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const binding = await subtle.sign('HMAC', hmacKey, bindingInput(keys.algorithm, keys.publicKey, target));
  return formatRequest(keys.algorithm, keys.publicKey, new Uint8Array(binding));
}

/** Decrypts a response header value to the payload; throws a TokenSecError if it is not genuine. */
export async function openResponse(
  subtle: SubtleCrypto,
  keys: ClientKeys,
  secret: string,
  target: RequestTarget,
  value: string,
): Promise<string> {
  const response = parseResponse(value, keys.algorithm);
  if (!response) throw new TokenSecError('ERR_TOKENSEC_MALFORMED_RESPONSE', 'Malformed response');
  try {
    const algorithm = webCryptoAlgorithm(keys.algorithm);
    const serverKey = await subtle.importKey('raw', response.publicKey, algorithm, false, []);
    // Web Crypto refuses an all-zero X25519 result (small-order server key) with an OperationError.
    const shared = await subtle.deriveBits({ name: algorithm.name, public: serverKey } as EcdhKeyDeriveParams, keys.privateKey, 256);
    const context = keyContext(keys.algorithm, keys.publicKey, response.publicKey, target);
    const hkdfKey = await subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
    const aesKey = await subtle.deriveKey(
      { name: 'HKDF', hash: 'SHA-256', salt: utf8(secret), info: context },
      hkdfKey,
      { name: 'AES-GCM', length: 256 },
      false,
      ['decrypt'],
    );
    const plaintext = await subtle.decrypt({ name: 'AES-GCM', iv: response.iv, additionalData: context }, aesKey, response.ciphertext);
    // GCM has authenticated every byte: this is the UTF-8 the server encoded.
    return new TextDecoder().decode(plaintext);
  } catch (cause) {
    // One code for every cryptographic failure: a tampered, replayed or misdirected response.
    throw new TokenSecError('ERR_TOKENSEC_DECRYPTION_FAILED', 'Decryption failed', undefined, { cause });
  }
}
