/**
 * DPoP (RFC 9449) pieces both sides share: the proof's header and claims, the public JWKs TokenSec
 * accepts, RFC 7638 thumbprint input, `htu` normalisation, and base64url JSON. Platform-neutral:
 * hashing and signatures are each side's own (node:crypto on the server, Web Crypto in the
 * browser), and the base64url codec is passed in.
 */
import { decodeBase64url, portableBase64url } from './base64url.js';
import { utf8 } from './context.js';
/** The JOSE `typ` of a DPoP proof. */
export const DPOP_TYP = 'dpop+jwt';
/** Request header carrying the proof. */
export const DPOP_HEADER = 'dpop';
/** Response header carrying a server nonce (RFC 9449 §8). */
export const DPOP_NONCE_HEADER = 'dpop-nonce';
/**
 * TokenSec's claim in a handshake's proof: base64url(SHA-256(ASCII(handshake request header value))).
 * It commits the proof to the handshake's ephemeral ECDH key (and binding), so an intermediary
 * cannot swap that key without breaking the proof's signature. docs/PROTOCOL.md specifies it.
 */
export const HANDSHAKE_CLAIM = 'tsh';
/**
 * TokenSec's bind claim (`tsb: true`) in a handshake's proof: the browser client made this key in
 * the run that sends the proof, so a session with no key bound yet may bind it. A key read back
 * from storage never carries it: any script of the origin could have written that storage.
 */
export const BIND_CLAIM = 'tsb';
export const DPOP_ALGORITHMS = ['ES256', 'EdDSA', 'Ed25519'];
/**
 * The algorithms a verifier accepts for a configured list: `EdDSA` with an Ed25519 `jwk` is the
 * algorithm RFC 9864 names `Ed25519`, so a list holding either name accepts both (and `algs`
 * in a challenge names both).
 *
 * @example
 * ```ts
 * acceptedAlgorithms(['ES256', 'EdDSA']); // ['ES256', 'EdDSA', 'Ed25519']
 * ```
 */
export function acceptedAlgorithms(configured) {
    const accepted = [...new Set(configured)];
    const ed = accepted.includes('EdDSA') || accepted.includes('Ed25519');
    return ed ? [...new Set([...accepted, 'EdDSA', 'Ed25519'])] : accepted;
}
/**
 * The public JWK a proof carries for `alg`, reduced to the members RFC 7638 hashes, or undefined
 * when it is not one: a JWK holding the private member `d` is refused (RFC 9449 §4.3); other
 * members (`kid`, `use`...) are not part of the key and are ignored.
 */
export function publicJwk(alg, jwk, codec = portableBase64url) {
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk))
        return undefined;
    const members = jwk;
    if ('d' in members)
        return undefined;
    const bytes = (name, length) => {
        const value = members[name];
        return typeof value === 'string' && decodeBase64url(value, codec)?.length === length ? value : undefined;
    };
    if (alg === 'ES256') {
        const x = bytes('x', 32);
        const y = bytes('y', 32);
        if (members.kty !== 'EC' || members.crv !== 'P-256' || !x || !y)
            return undefined;
        return { kty: 'EC', crv: 'P-256', x, y };
    }
    const x = bytes('x', 32);
    if (members.kty !== 'OKP' || members.crv !== 'Ed25519' || !x)
        return undefined;
    return { kty: 'OKP', crv: 'Ed25519', x };
}
/** RFC 7638: the JSON whose SHA-256 is the thumbprint, required members in lexicographic order, no white space. */
export function thumbprintInput(jwk) {
    // JSON.stringify keeps this member order and leaves out `y` where there is none (OKP).
    return JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
}
const UNRESERVED = /[A-Za-z0-9\-._~]/;
/**
 * `htu` as RFC 9449 §4.3 compares it: the URI without query and fragment, after RFC 3986
 * §6.2.2 (case, percent-encoding, dot segments) and §6.2.3 (default port, empty path) normalisation.
 * Undefined for anything that is not an absolute http(s) URI.
 */
export function normalizeHtu(uri) {
    let url;
    try {
        url = new URL(uri);
    }
    catch {
        return undefined;
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password)
        return undefined;
    // URL has lower-cased scheme and host, dropped a default port and resolved dot segments.
    const path = url.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_, hex) => {
        const char = String.fromCharCode(parseInt(hex, 16));
        return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
    });
    return `${url.protocol}//${url.host}${path}`;
}
export const encodeJson = (value, codec = portableBase64url) => codec.encode(utf8(JSON.stringify(value)));
/** Strict UTF-8, made on first use (so bundles that never decode drop it); decode() without `stream` keeps no state. */
let strictUtf8;
/** A JWS part decoded as a JSON object, or undefined (not canonical base64url, not UTF-8, not JSON, not an object). */
export function decodeJsonObject(text, codec = portableBase64url) {
    const bytes = decodeBase64url(text, codec);
    if (!bytes)
        return undefined;
    try {
        const value = JSON.parse((strictUtf8 ??= new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })).decode(bytes));
        return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
    }
    catch {
        return undefined;
    }
}
