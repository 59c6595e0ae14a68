/** Every failure of the browser client, through the public handshake(), each with its stable code. */
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handshake, TokenSecError } from '../../../client/index.js';
import tokenSec from '../../../src/index.js';
import { CSRF_REFUSED_MESSAGE, PUBLIC_MESSAGES } from '../../../src/server/error-handler.js';
import { listen } from '../../support/helpers.js';

describe('client errors', () => {
  let server: Awaited<ReturnType<typeof listen>>;
  let realResponse = '';
  beforeAll(async () => {
    const app = express();
    app.post('/500', (_req, res) => res.status(500).send('boom'));
    // What csurf, csrf-sync and csrf-csrf refuse a token with, as an app's error handler or errorHandler() answers it.
    app.post('/csrf', (_req, res) => res.status(403).json({ code: 'EBADCSRFTOKEN', message: CSRF_REFUSED_MESSAGE }));
    app.post('/csrf-bare', (_req, res) => res.status(403).json({ code: 'EBADCSRFTOKEN' }));
    app.post('/store', (_req, _res, next) => next(new TokenSecError('ERR_TOKENSEC_STORE_UNAVAILABLE', 'redis at 10.0.0.5 timed out', 503)));
    app.post('/no-csrf-middleware', tokenSec.handshake({ payload: 'token' }));
    app.use(tokenSec.errorHandler({ log: false }));
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

  it('HTTP error that names no code → ERR_TOKENSEC_HTTP_STATUS with the status, message "HTTP 500"', async () => {
    const error = await fails({ uri: `${server.origin}/500`, secret: 's-0123456789abcdef' });
    expect(error).toMatchObject({ code: 'ERR_TOKENSEC_HTTP_STATUS', status: 500 });
    expect(error.message).toBe('HTTP 500');
  });

  it("a refused CSRF token (JSON code EBADCSRFTOKEN) → ERR_TOKENSEC_CSRF_REFUSED, with the server's fix as its message", async () => {
    const error = await fails({ uri: `${server.origin}/csrf`, csrfToken: 'forged' });
    expect(error).toMatchObject({ code: 'ERR_TOKENSEC_CSRF_REFUSED', status: 403, message: CSRF_REFUSED_MESSAGE });
    const bare = await fails({ uri: `${server.origin}/csrf-bare`, csrfToken: 'forged' });
    expect(bare).toMatchObject({ code: 'ERR_TOKENSEC_CSRF_REFUSED', status: 403, message: 'HTTP 403' });
  });

  it("a server code through errorHandler() arrives with the server's one-line fix, never the details behind it", async () => {
    const error = await fails({ uri: `${server.origin}/store`, secret: 's-0123456789abcdef' });
    expect(error).toMatchObject({ code: 'ERR_TOKENSEC_STORE_UNAVAILABLE', status: 503 });
    expect(error.message).toBe(PUBLIC_MESSAGES.ERR_TOKENSEC_STORE_UNAVAILABLE);
    expect(error.message).not.toContain('10.0.0.5');
    const setup = await fails({ uri: `${server.origin}/no-csrf-middleware`, csrfToken: 'any' });
    expect(setup).toMatchObject({ code: 'ERR_TOKENSEC_NO_CSRF_MIDDLEWARE', status: 500 });
    expect(setup.message).toMatch(/^No CSRF middleware ran before tokenSec\.handshake\(\): mount csrf-sync, csrf-csrf or csurf before it/);
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

  it('connection refused → ERR_TOKENSEC_NETWORK, naming CORS as the other cause', async () => {
    const closed = await listen(express());
    await closed.close();
    const error = await fails({ uri: `${closed.origin}/token`, secret: 's-0123456789abcdef' });
    expect(error.code).toBe('ERR_TOKENSEC_NETWORK');
    expect(error.message).toBe('Network error or CORS (the server must allow this origin)');
    expect(error.cause).toBeInstanceOf(TypeError); // fetch's own error
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
