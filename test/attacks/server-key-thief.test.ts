/**
 * Threat table, "thief of a server key": the server has no long-term TokenSec key. Each
 * handshake's key pair is made for it and dropped. A thief of one handshake's private key (and of
 * everything on the wire) opens that handshake only.
 */
import { expect, it } from 'vitest';
import { createKeys, requestHeader } from '../../client/crypto.js';
import { parseRequest } from '../../src/protocol/wire.js';
import { generateServerKeyPair, importServerKeyPair } from '../../src/server/crypto/primitives.js';
import { sealPayload } from '../support/helpers.js';
import { createPrivateKey } from 'node:crypto';
import { openWithSharedSecret, x25519 } from '../support/attackers.js';

const SECRET = 'csrf-token-seen-on-the-wire-01';
const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };

async function exchange(serverKeyPair: ReturnType<typeof generateServerKeyPair>, payload: string) {
  const keys = await createKeys(crypto.subtle, 'x25519');
  const request = parseRequest(await requestHeader(crypto.subtle, keys, SECRET, target));
  const response = sealPayload({
    request,
    serverPublicKey: serverKeyPair.publicKey,
    sharedSecret: serverKeyPair.deriveSharedSecret(request.publicKey),
    secret: SECRET,
    target,
    payload,
  });
  return { clientKey: request.publicKey, response };
}

/** What the thief computes: ECDH(stolen server private key, the client key on the wire), then the protocol's key. */
function thiefOpens(stolen: Uint8Array, clientKey: Uint8Array, response: string): string {
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(stolen).toString('base64url'), x: '' },
    format: 'jwk',
  });
  return openWithSharedSecret(response, x25519(privateKey, clientKey), clientKey, SECRET, target);
}

it('one handshake private key opens that handshake, and not another one (forward secrecy)', async () => {
  const stolen = crypto.getRandomValues(new Uint8Array(32));
  const first = await exchange(importServerKeyPair('x25519', stolen), 'first-token');
  const second = await exchange(generateServerKeyPair('x25519'), 'second-token');
  expect(thiefOpens(stolen, first.clientKey, first.response)).toBe('first-token');
  expect(() => thiefOpens(stolen, second.clientKey, second.response)).toThrow();
});
