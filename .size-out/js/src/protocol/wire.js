/**
 * TokenSec protocol v3 header grammar: the request and response header values, formatted and
 * parsed. Shared by the server (node:crypto) and the browser client (Web Crypto), so the two can
 * never disagree; docs/PROTOCOL.md is its specification. Platform-neutral: each side passes its
 * base64url codec (the portable one by default).
 */
import { decodeBase64url, portableBase64url } from './base64url.js';
import { TokenSecError } from './errors.js';
export const VERSION = 'v3';
export const DEFAULT_HEADER = 'x-tokensec-handshake';
/** Where the client sends the CSRF token, and where the server takes its default secret from. */
export const CSRF_HEADER = 'x-csrf-token';
/** The cookie `tokenSec.initialize()` puts the CSRF token in, and the client reads it from, by default. */
export const CSRF_COOKIE = 'tokensec';
/** Raw public key sizes: X25519 (RFC 7748) and an uncompressed P-256 point (SEC 1: 0x04 || X || Y). */
export const PUBLIC_KEY_LENGTH = { x25519: 32, p256: 65 };
export const BINDING_LENGTH = 32; // HMAC-SHA256
export const IV_LENGTH = 12; // AES-GCM's 96-bit nonce
export const TAG_LENGTH = 16;
/** A request header is at most 139 characters (P-256); anything much longer is refused unparsed. */
export const MAX_REQUEST_HEADER_LENGTH = 256;
/**
 * The largest payload. The application sends it back on every API call as `Authorization: DPoP
 * <token>`, which must fit the 8 KiB request-header line common proxies allow (nginx's
 * large_client_header_buffers).
 */
export const MAX_PAYLOAD_BYTES = 6144;
/**
 * The longest response value (header and body forms joined): P-256 key, IV, and the largest
 * payload with its tag: `v3...` + 87 + 16 + ⌈(6144 + 16) × 4 / 3⌉. The client refuses longer values
 * before decoding them. A literal, so the browser bundle does not compute it (test/unit/protocol/wire.test.ts
 * checks it against that sum).
 */
export const MAX_RESPONSE_LENGTH = 8322;
/**
 * The reference server's default for the longest response header value; a longer answer moves its
 * ciphertext to the body. nginx's default proxy_buffer_size (4 KiB on x86-64) must hold the status
 * line and every response header: this leaves about 1 KiB for the application's own headers.
 */
export const DEFAULT_HEADER_LIMIT = 3072;
/** `v3.<algorithm>.<client public key>.<binding>` */
export function formatRequest(algorithm, publicKey, binding, codec = portableBase64url) {
    return [VERSION, algorithm, codec.encode(publicKey), codec.encode(binding)].join('.');
}
/** `v3.<server public key>.<iv>.<ciphertext and tag>` */
export function formatResponse(response, codec = portableBase64url) {
    return [VERSION, codec.encode(response.publicKey), codec.encode(response.iv), codec.encode(response.ciphertext)].join('.');
}
/**
 * The response in body form: the header keeps `v3.<server public key>.<iv>` and the body carries
 * `<ciphertext and tag>`, for answers too long for a proxy's response-header buffer.
 */
export function splitResponse(value) {
    const dot = value.lastIndexOf('.');
    return { header: value.slice(0, dot), body: value.slice(dot + 1) };
}
/** The response value a client opens: a 3-field header (body form) is completed by the body. */
export function joinResponse(header, body) {
    return header.split('.').length === 3 ? header + '.' + body : header;
}
// Messages name what is wrong and never echo the value: the header may be logged.
const malformed = (what) => new TokenSecError('ERR_TOKENSEC_MALFORMED_HEADER', `Malformed TokenSec handshake header: ${what}.`, 400);
/** Parses a request header on the server; throws a 4xx TokenSecError for anything else. */
export function parseRequest(value, codec = portableBase64url) {
    if (value.length > MAX_REQUEST_HEADER_LENGTH) {
        throw new TokenSecError('ERR_TOKENSEC_HEADER_TOO_LARGE', `TokenSec handshake header is longer than ${MAX_REQUEST_HEADER_LENGTH} characters.`, 431);
    }
    const parts = value.split('.');
    const [version = '', algorithm, encodedKey, encodedBinding] = parts;
    // The 2015 client sent CryptoJS output: base64 of "Salted__..." ("U2FsdGVkX1...").
    const legacy = value.startsWith('U2FsdGVkX1');
    if (legacy || (version !== VERSION && /^v\d{1,3}$/.test(version))) {
        throw new TokenSecError('ERR_TOKENSEC_UNSUPPORTED_VERSION', legacy
            ? 'TokenSec handshake from a 0.x (2015) client; serve the current client with tokenSec.client().'
            : `Unsupported TokenSec protocol version; this server speaks ${VERSION}.`, 400);
    }
    if (version !== VERSION)
        throw malformed(`expected it to start with "${VERSION}."`);
    if (parts.length !== 4 || encodedKey === undefined || encodedBinding === undefined) {
        throw malformed(`expected 4 dot-separated fields, got ${parts.length}`);
    }
    if (algorithm !== 'x25519' && algorithm !== 'p256') {
        throw new TokenSecError('ERR_TOKENSEC_UNSUPPORTED_ALGORITHM', 'Unsupported TokenSec key agreement algorithm; expected x25519 or p256.', 400);
    }
    const publicKey = decodeBase64url(encodedKey, codec);
    const binding = decodeBase64url(encodedBinding, codec);
    if (!publicKey)
        throw malformed('public key is not canonical base64url');
    if (!binding)
        throw malformed('binding is not canonical base64url');
    if (publicKey.length !== PUBLIC_KEY_LENGTH[algorithm] || (algorithm === 'p256' && publicKey[0] !== 4)) {
        throw new TokenSecError('ERR_TOKENSEC_INVALID_PUBLIC_KEY', `Invalid ${algorithm} public key: expected ${algorithm === 'p256' ? 'an uncompressed 65-byte point' : '32 bytes'}.`, 400);
    }
    if (binding.length !== BINDING_LENGTH)
        throw malformed(`binding must be ${BINDING_LENGTH} bytes`);
    return { algorithm, publicKey, publicKeyBase64url: encodedKey, binding };
}
/** Parses a response value (header form, or body form joined) in the client; undefined if it is not well formed. */
export function parseResponse(value, algorithm, codec = portableBase64url) {
    if (value.length > MAX_RESPONSE_LENGTH)
        return undefined;
    const parts = value.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION)
        return undefined;
    const [publicKey, iv, ciphertext] = parts.slice(1).map((part) => decodeBase64url(part, codec));
    if (!publicKey || !iv || !ciphertext)
        return undefined;
    if (publicKey.length !== PUBLIC_KEY_LENGTH[algorithm] ||
        (algorithm === 'p256' && publicKey[0] !== 4) ||
        iv.length !== IV_LENGTH ||
        ciphertext.length < TAG_LENGTH) {
        return undefined;
    }
    return { publicKey, iv, ciphertext };
}
/** HTTP field-name (RFC 9110 token). */
export const HEADER_NAME = /^[\w!#$%&'*+.^`|~-]+$/;
