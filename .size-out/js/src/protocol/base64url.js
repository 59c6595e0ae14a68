/**
 * base64url (RFC 4648 §5) without padding, canonical only. Platform-neutral: the portable codec
 * uses atob/btoa, which browsers and Node both have; a platform may pass a faster codec of its
 * own (the server passes Node's Buffer codec, src/server/base64url.ts).
 */
/** The portable codec, on atob/btoa: small in the browser bundle (a lookup table cost ~400 bytes). */
export const portableBase64url = {
    encode: (bytes) => btoa(String.fromCharCode(...bytes))
        .replace(/\+/g, '-')
        .replace(/\//g, '_')
        .replace(/=+$/, ''),
    decode: (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)),
};
export const encodeBase64url = (bytes, codec = portableBase64url) => codec.encode(bytes);
/**
 * Decodes unpadded base64url. Returns undefined for anything that is not the one canonical
 * encoding of some bytes (bad characters, padding, impossible length, non-zero spare bits), so
 * that every value has exactly one spelling on the wire.
 */
export function decodeBase64url(text, codec = portableBase64url) {
    if (!/^[\w-]*$/.test(text) || text.length % 4 === 1)
        return undefined;
    const bytes = codec.decode(text);
    // Both decoders ignore non-zero spare bits in the last character; re-encoding exposes them.
    return codec.encode(bytes) === text ? bytes : undefined;
}
