/**
 * The browser client's handshake (client/index.ts), run on Node's Web Crypto and fetch: every
 * failure a TokenSecError with a code, timeout and AbortSignal, what it binds and reads.
 */
import { parse as parseCookie } from 'cookie';
import express from 'express';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createKeys, openResponse } from '../../../client/crypto.js';
import { handshake, TokenSecError } from '../../../client/index.js';
import tokenSec from '../../../src/index.js';
import { TOKEN, listen } from '../../support/helpers.js';

const SECRET = 'client-hardening-secret-01';
let server: Awaited<ReturnType<typeof listen>>;
const seenCsrfTokens: (string | undefined)[] = [];
const LONG_PATH = `/long/${'p'.repeat(1500)}`;
/** Called when a request reaches /hang (which never answers): how a test acts once the request is in flight. */
let onHang: () => void = () => {};

beforeAll(async () => {
  const app = express();
  app.all('/token', tokenSec.handshake({ payload: TOKEN, secret: SECRET, terminate: true }));
  app.post(LONG_PATH, tokenSec.handshake({ payload: TOKEN, secret: SECRET, terminate: true }));
  app.post('/hang', () => onHang());
  app.post('/csrf', (req, res) => {
    seenCsrfTokens.push(req.get('x-csrf-token'));
    res.status(204).end();
  });
  server = await listen(app);
});
afterAll(() => server.close());
afterEach(() => {
  delete (globalThis as { document?: unknown }).document;
  onHang = () => {};
});

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (error: unknown) => {
      expect(error).toBeInstanceOf(TokenSecError);
      return error as TokenSecError;
    },
  );

describe('every failure is a TokenSecError with a code', () => {
  it.each([null, 42, 'x'])('handshake(%s) → ERR_TOKENSEC_INVALID_OPTIONS, not a TypeError', async (options) => {
    expect(await failure(handshake(options as never))).toMatchObject({ code: 'ERR_TOKENSEC_INVALID_OPTIONS' });
  });

  it.each([0, -1, Number.NaN, '5'])('timeout %s → ERR_TOKENSEC_INVALID_OPTIONS', async (timeout) => {
    expect(await failure(handshake({ uri: `${server.origin}/token`, secret: SECRET, timeout: timeout as never }))).toMatchObject({
      code: 'ERR_TOKENSEC_INVALID_OPTIONS',
    });
  });

  it('a response header of 200 KB → ERR_TOKENSEC_MALFORMED_RESPONSE, refused before decoding (no RangeError)', async () => {
    const keys = await createKeys(crypto.subtle, 'x25519');
    const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };
    const huge = `v3.${'A'.repeat(43)}.${'A'.repeat(16)}.${'A'.repeat(200_000)}`;
    await expect(openResponse(crypto.subtle, keys, SECRET, target, huge)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_MALFORMED_RESPONSE',
    });
  });
});

describe('timeout and AbortSignal', () => {
  it('a server that never answers → ERR_TOKENSEC_TIMEOUT after `timeout`', async () => {
    // /hang never answers: only the client's own timer can end the call (the test runner's 20 s would fail it otherwise).
    expect(await failure(handshake({ uri: `${server.origin}/hang`, secret: SECRET, timeout: 100 }))).toMatchObject({
      code: 'ERR_TOKENSEC_TIMEOUT',
    });
  });

  it('aborting the signal → ERR_TOKENSEC_ABORTED; an already aborted signal fails at once', async () => {
    const controller = new AbortController();
    onHang = () => controller.abort(); // once the request is at the server, not after a fixed time
    const pending = handshake({ uri: `${server.origin}/hang`, secret: SECRET, signal: controller.signal });
    expect(await failure(pending)).toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
    expect(await failure(handshake({ uri: `${server.origin}/token`, secret: SECRET, signal: AbortSignal.abort() }))).toMatchObject({
      code: 'ERR_TOKENSEC_ABORTED',
    });
  });

  it('the callback form reports the timeout too', async () => {
    const error = await new Promise((resolve) => handshake({ uri: `${server.origin}/hang`, secret: SECRET, timeout: 50 }, resolve));
    expect(error).toMatchObject({ code: 'ERR_TOKENSEC_TIMEOUT' });
  });
});

describe('what the client binds and reads', () => {
  it('method "patch" is upper-cased before use: the server and the client bind PATCH', async () => {
    expect(await handshake({ uri: `${server.origin}/token`, secret: SECRET, method: 'patch' })).toBe(TOKEN);
  });

  it('a path whose key-derivation info is over 1024 bytes works (HKDF as two HMACs)', async () => {
    expect(await handshake({ uri: `${server.origin}${LONG_PATH}`, secret: SECRET })).toBe(TOKEN);
  });

  it.each([
    ['a quoted value', 'tokensec="abc%20def"'],
    ['a duplicate name: the first wins', 'tokensec=first; other=1; tokensec=second'],
    ['a value with spaces around', 'a=1;  tokensec=plain-value  '],
    ['malformed percent-encoding, kept as is', 'tokensec=100%'],
  ])('reads the CSRF cookie as the cookie package parses it: %s', async (_, cookie) => {
    (globalThis as { document?: unknown }).document = { cookie };
    const expected = parseCookie(cookie).tokensec;
    await handshake({ uri: `${server.origin}/csrf` }).catch(() => undefined);
    expect(seenCsrfTokens.at(-1)).toBe(expected);
  });
});
