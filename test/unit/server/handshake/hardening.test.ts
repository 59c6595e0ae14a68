/**
 * The handshake middleware fails closed: safe methods refused, the secret's rules, strict UTF-8
 * payloads. Beside it: deadline.test.ts, no-store.test.ts, ../request-target.test.ts.
 */
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { openResponse } from '../../../../client/crypto.js';
import tokenSec from '../../../../src/index.js';
import { plainHandshakeApp as app, PLAIN_SECRET as SECRET, x25519Header as header } from '../../../support/handshake.js';
import { TOKEN, csrfApp, defined, listen, visit } from '../../../support/helpers.js';

const servers: { close(): Promise<void> }[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

describe('safe methods fail closed', () => {
  it.each(['GET', 'HEAD', 'OPTIONS'])(
    '%s handshake → 405 ERR_TOKENSEC_METHOD_NOT_ALLOWED naming the method, with Allow',
    async (method) => {
      const { app: a, seen } = app();
      const { value } = await header(SECRET, method);
      const response = await request(a)[method.toLowerCase() as 'get'](`/token`).set('x-tokensec-handshake', value).expect(405);
      expect(response.headers['x-tokensec-handshake']).toBeUndefined();
      expect(seen[0]).toMatchObject({ code: 'ERR_TOKENSEC_METHOD_NOT_ALLOWED', status: 405, headers: { Allow: 'POST' } });
      expect(seen[0]?.message).toContain(method);
    },
  );

  it('with csurf, which lets a GET pass its CSRF check, a GET handshake is refused', async () => {
    const { app: a, errors } = csrfApp({}, undefined, (router) =>
      router.get('/get-token', tokenSec.handshake({ payload: TOKEN, terminate: true, dpop: { required: false } })),
    );
    const server = await listen(a);
    servers.push(server);
    const { cookie, csrfToken } = await visit(server.origin);
    const { value } = await header(csrfToken, 'GET', '/get-token');
    await request(a).get('/get-token').set('cookie', cookie).set('x-csrf-token', csrfToken).set('x-tokensec-handshake', value).expect(405);
    expect(errors.at(-1)?.code).toBe('ERR_TOKENSEC_METHOD_NOT_ALLOWED');
  });

  it('allowSafeMethods: true answers GET (documented risk), other unsafe methods are answered by default', async () => {
    const { app: a } = app({ allowSafeMethods: true, terminate: true });
    const get = await header(SECRET, 'GET');
    await request(a).get('/token').set('x-tokensec-handshake', get.value).expect(200);
    const { app: b } = app({ terminate: true });
    const patch = await header(SECRET, 'PATCH');
    const response = await request(b).patch('/token').set('x-tokensec-handshake', patch.value).expect(200);
    expect(
      await openResponse(crypto.subtle, patch.keys, SECRET, patch.target, defined(response.headers['x-tokensec-handshake'], 'header')),
    ).toBe(TOKEN);
  });
});

describe('the secret', () => {
  it.each([
    ['one byte', 's', /is 1 bytes; it must be at least 16/],
    ['15 bytes', 'x'.repeat(15), /at least 16/],
    ['a NUL', `${'x'.repeat(20)}\0`, /U\+0000/],
    ['a lone surrogate', `${'x'.repeat(20)}\ud800`, /unpaired surrogate/],
  ])('a static secret of %s is refused at startup', (_, secret, message) => {
    expect(() => tokenSec.handshake({ payload: 't', secret })).toThrow(message);
  });

  it('a secret function returning a short secret → 500 ERR_TOKENSEC_SECRET_FAILED (a server mistake, said in the log)', async () => {
    const { app: a, seen } = app({ secret: () => 'short' });
    await request(a)
      .post('/token')
      .set('x-tokensec-handshake', (await header('short')).value)
      .expect(500, { code: 'ERR_TOKENSEC_SECRET_FAILED' });
    expect(seen[0]?.message).toMatch(/at least 16/);
  });

  it('"no secret" and "wrong secret" look the same to the client; the reason stays on the server-side error', async () => {
    const none = app({ secret: () => undefined });
    const wrong = app();
    const a = await request(none.app)
      .post('/token')
      .set('x-tokensec-handshake', (await header(SECRET)).value)
      .expect(403);
    const b = await request(wrong.app)
      .post('/token')
      .set('x-tokensec-handshake', (await header(`${SECRET}-wrong`)).value)
      .expect(403);
    expect(a.body).toEqual(b.body);
    expect(a.body).toEqual({ code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
    expect(none.seen[0]?.message).toBe(wrong.seen[0]?.message);
    expect(none.seen[0]).toMatchObject({ reason: 'no-secret' });
    expect(wrong.seen[0]).toMatchObject({ reason: 'binding-mismatch' });
  });
});

describe('strict UTF-8', () => {
  it('a payload with an unpaired surrogate → 500 ERR_TOKENSEC_INVALID_PAYLOAD, not a silent U+FFFD', async () => {
    const { app: a } = app({ payload: () => 'token-\ud800-end' });
    await request(a)
      .post('/token')
      .set('x-tokensec-handshake', (await header(SECRET)).value)
      .expect(500, { code: 'ERR_TOKENSEC_INVALID_PAYLOAD' });
  });

  it('a payload that starts with U+FEFF and holds astral characters arrives intact', async () => {
    const payload = '\ufeff{"t":"😀"}';
    const { app: a } = app({ payload, terminate: true });
    const { keys, target, value } = await header(SECRET);
    const response = await request(a).post('/token').set('x-tokensec-handshake', value).expect(200);
    expect(await openResponse(crypto.subtle, keys, SECRET, target, defined(response.headers['x-tokensec-handshake'], 'header'))).toBe(
      payload,
    );
  });
});
