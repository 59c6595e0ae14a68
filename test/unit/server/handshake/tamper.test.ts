/** A reviewer's tampering attacks on real responses: every one must be refused. */
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { openResponse, type ClientKeys } from '../../../../client/crypto.js';
import { decodeBase64url, encodeBase64url } from '../../../../src/protocol/base64url.js';
import { handshakeApp, handshakeHeader } from '../../../support/handshake.js';
import { defined } from '../../../support/helpers.js';

const SECRET = 'tamper-secret-0123456789';
const PAYLOAD = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ0YW1wZXIifQ.sig';
const TARGET = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };

function app() {
  return handshakeApp({ payload: PAYLOAD, secret: SECRET, terminate: true, dpop: { required: false } }, { path: ['/token', '/other'] }).app;
}

async function exchange(algorithm: 'x25519' | 'p256'): Promise<{ keys: ClientKeys; request: string; response: string }> {
  const { keys, value } = await handshakeHeader(SECRET, { ...TARGET, algorithm });
  const res = await request(app()).post('/token').set('x-tokensec-handshake', value).expect(200);
  return { keys, request: value, response: defined(res.headers['x-tokensec-handshake'], 'handshake header') };
}

describe.each(['x25519', 'p256'] as const)('%s', (algorithm) => {
  it('every bit flip in the server key, the IV and the ciphertext is refused with ERR_TOKENSEC_DECRYPTION_FAILED (a P-256 key no longer starting 04: MALFORMED_RESPONSE)', async () => {
    const { keys, response } = await exchange(algorithm);
    expect(await openResponse(crypto.subtle, keys, SECRET, TARGET, response)).toBe(PAYLOAD);
    const parts = response.split('.');
    let flips = 0;
    for (const part of [1, 2, 3]) {
      const bytes = decodeBase64url(defined(parts[part], 'response field'))!;
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        const flipped = bytes.slice();
        flipped.set([defined(flipped[bit >> 3], 'byte') ^ (1 << (bit & 7))], bit >> 3);
        const tampered = parts.map((p, i) => (i === part ? encodeBase64url(flipped) : p)).join('.');
        // X25519 ignores the top bit of a public key (RFC 7748 §5), so that flip gives the same
        // shared secret: it is refused only because the key context binds the key's exact bytes.
        const leading04 = algorithm === 'p256' && part === 1 && bit < 8;
        await expect(openResponse(crypto.subtle, keys, SECRET, TARGET, tampered)).rejects.toMatchObject({
          code: leading04 ? 'ERR_TOKENSEC_MALFORMED_RESPONSE' : 'ERR_TOKENSEC_DECRYPTION_FAILED',
        });
        flips++;
      }
    }
    expect(flips).toBe(
      parts
        .slice(1)
        .map((p) => decodeBase64url(p)!.length)
        .reduce((a, b) => a + b) * 8,
    );
  });

  it('a substituted server public key is refused', async () => {
    const { keys, response } = await exchange(algorithm);
    const other = await exchange(algorithm);
    const parts = response.split('.');
    parts[1] = defined(other.response.split('.')[1], 'server key field');
    await expect(openResponse(crypto.subtle, keys, SECRET, TARGET, parts.join('.'))).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_DECRYPTION_FAILED',
    });
  });

  it('a response replayed to another handshake is refused', async () => {
    const first = await exchange(algorithm);
    const second = await exchange(algorithm);
    await expect(openResponse(crypto.subtle, second.keys, SECRET, TARGET, first.response)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_DECRYPTION_FAILED',
    });
  });

  it('a response opened for another method or path is refused', async () => {
    const { keys, response } = await exchange(algorithm);
    for (const target of [
      { ...TARGET, method: 'PUT' },
      { ...TARGET, path: '/other' },
      { ...TARGET, header: 'x-other' },
    ]) {
      await expect(openResponse(crypto.subtle, keys, SECRET, target, response)).rejects.toMatchObject({
        code: 'ERR_TOKENSEC_DECRYPTION_FAILED',
      });
    }
  });

  it('a request replayed to another path or method is refused by the server (403), before any key is made', async () => {
    const { request: value } = await exchange(algorithm);
    await request(app()).post('/other').set('x-tokensec-handshake', value).expect(403, { code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
    const { app: put } = handshakeApp(
      { payload: PAYLOAD, secret: SECRET, terminate: true, dpop: { required: false } },
      { mount: 'put', after: (_req, res) => res.end() },
    );
    await request(put).put('/token').set('x-tokensec-handshake', value).expect(403, { code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
  });

  it('a downgrade (the same key bytes relabelled as the other algorithm) is refused', async () => {
    const { request: value } = await exchange(algorithm);
    const relabelled = value.replace(`.${algorithm}.`, algorithm === 'x25519' ? '.p256.' : '.x25519.');
    const res = await request(app()).post('/token').set('x-tokensec-handshake', relabelled);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('ERR_TOKENSEC_INVALID_PUBLIC_KEY');
  });
});
