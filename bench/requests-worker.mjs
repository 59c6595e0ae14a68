// Makes the first table's requests on a thread of its own, as browsers would: one DPoP key per
// algorithm (like a page's), a fresh proof per request (new jti, current iat), and for handshakes
// a fresh X25519 key and its binding. bench/index.mjs asks for a batch just before each run, so
// every proof is used within seconds of being made (the run checks: at most half the window).
// Keys come from CSPRNG bytes (Node 20: never export generateKeyPairSync keys as JWK).
import { createECDH, createHash, createPrivateKey, randomBytes, randomUUID, sign } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { bindingInput } from '../dist/protocol/context.js';
import { formatRequest } from '../dist/protocol/wire.js';
import { hmacSha256 } from '../dist/server/crypto.js';

const b64 = (bytes) => Buffer.from(bytes).toString('base64url');
const sha256 = (text) => createHash('sha256').update(text).digest();

function dpopKey(alg) {
  let jwk, privateKey;
  if (alg === 'ES256') {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(randomBytes(32));
    const point = ecdh.getPublicKey();
    jwk = { crv: 'P-256', kty: 'EC', x: b64(point.subarray(1, 33)), y: b64(point.subarray(33)) };
    privateKey = createPrivateKey({ key: { ...jwk, d: b64(ecdh.getPrivateKey()) }, format: 'jwk' });
  } else {
    // Node requires an `x` member in a private JWK but derives the public key from `d`.
    privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64(randomBytes(32)), x: '' }, format: 'jwk' });
    jwk = { crv: 'Ed25519', kty: 'OKP', x: privateKey.export({ format: 'jwk' }).x };
  }
  const thumbprint = sha256(JSON.stringify(jwk)); // members in RFC 7638 order already
  const header = b64(JSON.stringify({ typ: 'dpop+jwt', alg, jwk }));
  const signOptions = alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey;
  return {
    jkt: b64(thumbprint),
    thumbprint,
    proof(claims) {
      const input = `${header}.${b64(JSON.stringify({ jti: randomUUID(), iat: Math.floor(Date.now() / 1000), ...claims }))}`;
      return `${input}.${b64(sign(alg === 'ES256' ? 'sha256' : null, Buffer.from(input), signOptions))}`;
    },
  };
}
const keys = { ES256: dpopKey('ES256'), EdDSA: dpopKey('EdDSA') };

/** A fresh X25519 client public key (from 32 CSPRNG bytes), raw. */
function x25519PublicKey() {
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64(randomBytes(32)), x: '' }, format: 'jwk' });
  return Buffer.from(key.export({ format: 'jwk' }).x, 'base64url');
}

parentPort.on('message', ({ id, kind, alg, count, origin, path, token, csrfToken, cookie }) => {
  const key = keys[alg];
  if (kind === 'jkt') return parentPort.postMessage({ id, jkt: keys.ES256.jkt, jktEdDSA: keys.EdDSA.jkt });
  const madeAt = Date.now();
  const requests = [];
  const url = origin + path;
  if (kind === 'api') {
    const ath = b64(sha256(token));
    // The plain route is sent the same token as a Bearer token (it does not look at the proof).
    const scheme = path === '/api-plain' ? 'Bearer' : 'DPoP';
    for (let i = 0; i < count; i++) {
      requests.push({
        method: 'GET',
        path,
        headers: { authorization: `${scheme} ${token}`, dpop: key.proof({ htm: 'GET', htu: url, ath }) },
      });
    }
  } else {
    const target = { header: 'x-tokensec-handshake', method: 'POST', path, jkt: key.thumbprint };
    for (let i = 0; i < count; i++) {
      const publicKey = x25519PublicKey();
      const value = formatRequest('x25519', publicKey, hmacSha256(Buffer.from(csrfToken), bindingInput('x25519', publicKey, target)));
      // tsb: the key was made by this page run, as a fresh page's is (TokenSec 3.1 binds a session
      // only to such a key; a session already bound to it accepts it too).
      const proof = key.proof({ htm: 'POST', htu: url, tsh: b64(sha256(value)), tsb: true });
      requests.push({ method: 'POST', path, headers: { 'x-tokensec-handshake': value, dpop: proof, 'x-csrf-token': csrfToken, cookie } });
    }
  }
  parentPort.postMessage({ id, madeAt, requests });
});
