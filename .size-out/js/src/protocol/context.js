const BINDING_LABEL = 'TokenSec v3 binding';
const KEY_LABEL = 'TokenSec v3 key';
const NO_KEY = new Uint8Array(0);
const encoder = new TextEncoder();
export const utf8 = (text) => encoder.encode(text);
/**
 * Matches a string that has no exact UTF-8 encoding: with the u flag a surrogate pair is one
 * astral code point, so only an unpaired half matches (TextEncoder would turn it into U+FFFD).
 */
export const LONE_SURROGATE = /\p{Cs}/u;
/**
 * label, algorithm, the public keys, the DPoP key's thumbprint, then the target, each field as a
 * 2-byte big-endian length and its bytes, so that no two field lists encode alike.
 */
function context(label, algorithm, publicKeys, target) {
    const fields = [
        label,
        algorithm,
        ...publicKeys,
        target.jkt ?? NO_KEY,
        target.header.toLowerCase(),
        target.method.toUpperCase(),
        target.path,
    ].map((field) => (typeof field === 'string' ? utf8(field) : field));
    const out = new Uint8Array(fields.reduce((n, field) => n + 2 + field.length, 0));
    let offset = 0;
    for (const field of fields) {
        // The server refuses longer paths first (414); never truncate silently.
        if (field.length > 0xffff)
            throw new RangeError();
        out[offset] = field.length >> 8;
        out[offset + 1] = field.length & 255;
        out.set(field, offset + 2);
        offset += 2 + field.length;
    }
    return out;
}
/** The message the client MACs with the secret to prove it holds it: HMAC-SHA256(secret, this). */
export const bindingInput = (algorithm, clientPublicKey, target) => context(BINDING_LABEL, algorithm, [clientPublicKey], target);
/** HKDF `info` and AES-GCM additional data: ties the key and ciphertext to this exact exchange. */
export const keyContext = (algorithm, clientPublicKey, serverPublicKey, target) => context(KEY_LABEL, algorithm, [clientPublicKey, serverPublicKey], target);
