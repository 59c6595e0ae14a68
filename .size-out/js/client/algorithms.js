/** Key agreement for the handshake's ephemeral keys, by protocol name, in order of preference. */
export const KEY_AGREEMENT = {
    x25519: { name: 'X25519' },
    p256: { name: 'ECDH', namedCurve: 'P-256' },
};
/** DPoP signatures, by JWS `alg`. */
export const DPOP_SIGNATURE = {
    ES256: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
    EdDSA: { name: 'Ed25519' },
};
/** Whether `name` is a row of `table` (an own key: never `toString` or another inherited name). */
export const isRow = (table, name) => Object.hasOwn(table, name);
