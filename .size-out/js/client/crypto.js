/**
 * The browser's half of protocol v3 (docs/PROTOCOL.md), on Web Crypto. Private keys are created
 * non-extractable: script can use them through crypto.subtle but never read their bytes.
 */
import { KEY_AGREEMENT } from './algorithms.js';
import { fail } from './fail.js';
import { bindingInput, keyContext, utf8 } from '../src/protocol/context.js';
import { formatRequest, parseResponse } from '../src/protocol/wire.js';
/** Web Crypto, which browsers offer only in secure contexts (HTTPS, localhost). */
export function subtleCrypto() {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle)
        throw fail('ERR_TOKENSEC_INSECURE_CONTEXT', 'Needs HTTPS or localhost (no crypto.subtle)');
    return subtle;
}
/**
 * A fresh key pair: the given algorithm, or the first of KEY_AGREEMENT's the browser has: X25519
 * (Chrome 133, Firefox 130, Safari 17), else P-256.
 */
export async function createKeys(subtle, algorithm) {
    for (const candidate of algorithm ? [algorithm] : Object.keys(KEY_AGREEMENT)) {
        try {
            const pair = (await subtle.generateKey(KEY_AGREEMENT[candidate], false, ['deriveBits']));
            return {
                algorithm: candidate,
                privateKey: pair.privateKey,
                publicKey: new Uint8Array(await subtle.exportKey('raw', pair.publicKey)),
            };
        }
        catch {
            // not supported here: try the next one
        }
    }
    throw fail('ERR_TOKENSEC_UNSUPPORTED_BROWSER', 'No X25519 or P-256');
}
/** HMAC-SHA256. */
async function hmac(subtle, key, data) {
    const hmacKey = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new Uint8Array(await subtle.sign('HMAC', hmacKey, data));
}
/** The request header value: version, algorithm, public key and HMAC(secret, binding input). */
export async function requestHeader(subtle, keys, secret, target) {
    // An unpaired surrogate has no UTF-8: refused here, before TextEncoder would make it U+FFFD.
    if (/\p{Cs}/u.test(secret))
        throw fail('ERR_TOKENSEC_INVALID_OPTIONS', 'Bad secret');
    return formatRequest(keys.algorithm, keys.publicKey, await hmac(subtle, utf8(secret), bindingInput(keys.algorithm, keys.publicKey, target)));
}
/** Decrypts a response header value to the payload; throws a TokenSecError if it is not genuine. */
export async function openResponse(subtle, keys, secret, target, value) {
    const response = parseResponse(value, keys.algorithm);
    if (!response)
        throw fail('ERR_TOKENSEC_MALFORMED_RESPONSE', 'Malformed response');
    try {
        const algorithm = KEY_AGREEMENT[keys.algorithm];
        const serverKey = await subtle.importKey('raw', response.publicKey, algorithm, false, []);
        // Web Crypto refuses an all-zero X25519 result (small-order server key) with an OperationError.
        const shared = await subtle.deriveBits({ name: algorithm.name, public: serverKey }, keys.privateKey, 256);
        const context = keyContext(keys.algorithm, keys.publicKey, response.publicKey, target);
        // HKDF-SHA256 (RFC 5869) for one 32-byte block, as two HMACs: Web Crypto's HKDF (in Node at
        // least) refuses an `info` over 1024 bytes, and ours holds the request path.
        const prk = await hmac(subtle, utf8(secret), shared);
        const okm = await hmac(subtle, prk, new Uint8Array([...context, 1]));
        const aesKey = await subtle.importKey('raw', okm, 'AES-GCM', false, ['decrypt']);
        const plaintext = await subtle.decrypt({ name: 'AES-GCM', iv: response.iv, additionalData: context }, aesKey, response.ciphertext);
        // GCM has authenticated every byte: this is the UTF-8 the server encoded. Strictly: a byte
        // sequence that is not UTF-8 is an error, and a leading U+FEFF is part of the payload.
        return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(plaintext);
    }
    catch (cause) {
        // One code for every cryptographic failure: a tampered, replayed or misdirected response.
        throw fail('ERR_TOKENSEC_DECRYPTION_FAILED', 'Decryption failed', undefined, { cause });
    }
}
