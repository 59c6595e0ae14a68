// Makes the first table's requests on a thread of its own, as browsers would: one DPoP key per
// algorithm (like a page's), a fresh proof per request (new jti, current iat), and for handshakes
// a fresh X25519 key and its binding. Proofs carry the server's current DPoP nonce when it gives one. bench/index.mjs asks for a batch just before each run, so
// every proof is used within seconds of being made (the run checks: at most half the window).
// Keys come from CSPRNG bytes (Node 20: never export generateKeyPairSync keys as JWK).
import {
  createDecipheriv,
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  randomBytes,
  randomUUID,
  sign,
} from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { bindingInput, keyContext } from '../dist/protocol/context.js';
import { formatRequest } from '../dist/protocol/wire.js';
import { hkdfSha256, hmacSha256 } from '../dist/server/crypto/primitives.js';

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

/** A fresh X25519 client key (from 32 CSPRNG bytes) and its raw public key. */
function x25519Key() {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64(randomBytes(32)), x: '' }, format: 'jwk' });
  return { privateKey, publicKey: Buffer.from(privateKey.export({ format: 'jwk' }).x, 'base64url') };
}

/** The handshakes of each batch, kept until their answers are opened. */
const batches = new Map();

/**
 * Opens an answer as the client would and returns the JWT's claims: TokenSec's (docs/PROTOCOL.md:
 * HKDF over the key context, which is also the AES-GCM additional data) or the floor route's
 * (HKDF info and additional data: the two public keys).
 */
function open(value, { privateKey, publicKey }, csrfToken, target, floor) {
  const [version, serverKey, iv, sealed] = String(value).split('.');
  if (version !== 'v3' || !sealed) throw new Error('not a v3 answer');
  const serverPublic = Buffer.from(serverKey, 'base64url');
  const shared = diffieHellman({
    privateKey,
    publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: serverKey }, format: 'jwk' }),
  });
  const context = floor ? Buffer.concat([publicKey, serverPublic]) : keyContext('x25519', publicKey, serverPublic, target);
  const key = floor
    ? Buffer.from(hkdfSync('sha256', shared, csrfToken, context, 32))
    : hkdfSha256(shared, Buffer.from(csrfToken), context, 32);
  const bytes = Buffer.from(sealed, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url')).setAAD(context);
  decipher.setAuthTag(bytes.subarray(-16));
  const jwt = Buffer.concat([decipher.update(bytes.subarray(0, -16)), decipher.final()]).toString();
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

parentPort.on('message', ({ id, kind, alg, count, origin, path, token, csrfToken, cookie, batch, values, nonce }) => {
  const key = keys[alg];
  if (kind === 'jkt') return parentPort.postMessage({ id, jkt: keys.ES256.jkt, jktEdDSA: keys.EdDSA.jkt });
  if (kind === 'open') {
    // Every answer of a handshake batch, opened with its request's key: the token inside must be
    // bound to the proof's key.
    const made = batches.get(batch);
    batches.delete(batch);
    let failed = 0;
    values.forEach((value, i) => {
      try {
        if (made.floor !== undefined && open(value, made.clientKeys[i], made.csrfToken, made.target, made.floor).cnf?.jkt !== made.jkt)
          failed++;
      } catch {
        failed++;
      }
    });
    return parentPort.postMessage({ id, failed });
  }
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
        headers: { authorization: `${scheme} ${token}`, dpop: key.proof({ htm: 'GET', htu: url, ath, nonce }) },
      });
    }
  } else {
    const target = { header: 'x-tokensec-handshake', method: 'POST', path, jkt: key.thumbprint };
    const clientKeys = [];
    // The plain route answers the token itself (no handshake to open).
    batches.set(id, { clientKeys, csrfToken, target, jkt: key.jkt, floor: path === '/token-plain' ? undefined : path === '/token-floor' });
    for (let i = 0; i < count; i++) {
      const { privateKey, publicKey } = x25519Key();
      clientKeys.push({ privateKey, publicKey });
      const value = formatRequest('x25519', publicKey, hmacSha256(Buffer.from(csrfToken), bindingInput('x25519', publicKey, target)));
      // tsb: the key was made by this page run, as a fresh page's is (TokenSec 3.1 binds a session
      // only to such a key; a session already bound to it accepts it too).
      const proof = key.proof({ htm: 'POST', htu: url, tsh: b64(sha256(value)), tsb: true, nonce });
      requests.push({ method: 'POST', path, headers: { 'x-tokensec-handshake': value, dpop: proof, 'x-csrf-token': csrfToken, cookie } });
    }
  }
  parentPort.postMessage({ id, batch: id, madeAt, requests });
});
