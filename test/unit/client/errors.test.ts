/** Every failure of the browser client, through the public handshake(), each with its stable code. */
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handshake, TokenSecError } from '../../../client/index.js';
import { listen } from '../../support/helpers.js';

describe('client errors', () => {
  let server: Awaited<ReturnType<typeof listen>>;
  let realResponse = '';
  beforeAll(async () => {
    const app = express();
    app.post('/500', (_req, res) => res.status(500).send('boom'));
    app.post('/none', (_req, res) => res.send('no header'));
    app.post('/garbage', (_req, res) => res.set('x-tokensec-handshake', 'v3.not.a.response').end());
    app.post('/wrong-length', (_req, res) => res.set('x-tokensec-handshake', 'v3.AAAA.AAAA.AAAA').end());
    // A well-formed response that was made for another handshake (a replay).
    app.post('/replayed', (_req, res) => res.set('x-tokensec-handshake', realResponse).end());
    server = await listen(app);
    const { importServerKeyPair } = await import('../../../src/server/crypto/primitives.js');
    const { sealPayload } = await import('../../support/helpers.js');
    const { parseRequest } = await import('../../../src/protocol/wire.js');
    const { requestHeader, createKeys } = await import('../../../client/crypto.js');
    const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/replayed' };
    const keys = await createKeys(crypto.subtle, 'x25519');
    const request = parseRequest(await requestHeader(crypto.subtle, keys, 's-0123456789abcdef', target));
    const serverKeys = importServerKeyPair('x25519', new Uint8Array(32).fill(9));
    realResponse = sealPayload({
      request,
      serverPublicKey: serverKeys.publicKey,
      sharedSecret: serverKeys.deriveSharedSecret(request.publicKey),
      secret: 's-0123456789abcdef',
      target,
      payload: 'token',
    });
  });
  afterAll(() => server.close());

  const fails = async (options: Parameters<typeof handshake>[0]) => {
    const error = await handshake(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TokenSecError);
    return error as TokenSecError;
  };

  it('no secret and no CSRF token → ERR_TOKENSEC_NO_SECRET, before any request', async () => {
    const error = await fails({ uri: `${server.origin}/none` });
    expect(error.code).toBe('ERR_TOKENSEC_NO_SECRET');
    expect(error.message).toMatch(/No csrfToken, secret or tokensec cookie/);
  });

  it('HTTP error → ERR_TOKENSEC_HTTP_STATUS with the status', async () => {
    expect(await fails({ uri: `${server.origin}/500`, secret: 's-0123456789abcdef' })).toMatchObject({
      code: 'ERR_TOKENSEC_HTTP_STATUS',
      status: 500,
    });
  });

  it('no response header → ERR_TOKENSEC_NO_RESPONSE_HEADER, naming Access-Control-Expose-Headers', async () => {
    const error = await fails({ uri: `${server.origin}/none`, secret: 's-0123456789abcdef' });
    expect(error.code).toBe('ERR_TOKENSEC_NO_RESPONSE_HEADER');
    expect(error.message).toMatch(/Access-Control-Expose-Headers/);
  });

  it.each(['garbage', 'wrong-length'])('%s response → ERR_TOKENSEC_MALFORMED_RESPONSE', async (path) => {
    expect((await fails({ uri: `${server.origin}/${path}`, secret: 's-0123456789abcdef' })).code).toBe('ERR_TOKENSEC_MALFORMED_RESPONSE');
  });

  it('a response made for another handshake → ERR_TOKENSEC_DECRYPTION_FAILED', async () => {
    expect((await fails({ uri: `${server.origin}/replayed`, secret: 's-0123456789abcdef', algorithm: 'x25519' })).code).toBe(
      'ERR_TOKENSEC_DECRYPTION_FAILED',
    );
  });

  it('connection refused → ERR_TOKENSEC_NETWORK', async () => {
    const closed = await listen(express());
    await closed.close();
    expect((await fails({ uri: `${closed.origin}/token`, secret: 's-0123456789abcdef' })).code).toBe('ERR_TOKENSEC_NETWORK');
  });

  it.each([[{ header: 'bad header' }], [{ algorithm: 'x448' as 'x25519' }], [{ uri: 'http://[' }]])(
    'bad options %j → ERR_TOKENSEC_INVALID_OPTIONS',
    async (options) => {
      expect((await fails({ secret: 's-0123456789abcdef', ...options })).code).toBe('ERR_TOKENSEC_INVALID_OPTIONS');
    },
  );

  it('delivers errors to a callback too', async () => {
    const error = await new Promise((resolve) => handshake({ uri: `${server.origin}/500`, secret: 's-0123456789abcdef' }, resolve));
    expect(error).toMatchObject({ code: 'ERR_TOKENSEC_HTTP_STATUS' });
  });
});
