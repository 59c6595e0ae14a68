/**
 * Server hardening (the threat-model issue, points 2, 3, 5 and 6): each case here failed on the
 * 2.0.0 code.
 */
import { createServer } from 'node:http';
import express from 'express';
import request from 'supertest';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createKeys, openResponse, requestHeader } from '../../client/crypto.js';
import tokenSec, { TokenSecError } from '../../src/index.js';
import { HandshakeDeadline } from '../../src/server/handshake/deadline.js';
import { TOKEN, csrfApp, defined, listen, visit } from '../support/helpers.js';

const SECRET = 'hardening-secret-0123456789';

async function header(secret: string, method = 'POST', path = '/token') {
  const keys = await createKeys(crypto.subtle, 'x25519');
  const target = { header: 'x-tokensec-handshake', method, path };
  return { keys, target, value: await requestHeader(crypto.subtle, keys, secret, target) };
}

function app(options: Partial<Parameters<typeof tokenSec.handshake>[0]> = {}, after?: express.RequestHandler) {
  const a = express();
  const seen: TokenSecError[] = [];
  a.all(
    '/token',
    tokenSec.handshake({ payload: TOKEN, secret: SECRET, dpop: { required: false }, ...options }),
    after ?? ((_req, res) => res.json({ next: true })),
  );
  a.use((err: TokenSecError, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    seen.push(err);
    res.status(err.status ?? 500).json({ code: err.code });
  });
  return { app: a, seen };
}

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

  it('with csurf, a GET handshake got past the CSRF check and received a token; now it is refused', async () => {
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

describe('deadline and cancellation', () => {
  it('the timeout covers the secret function: one that never settles → 503 ERR_TOKENSEC_TIMEOUT', async () => {
    const { app: a } = app({ secret: () => new Promise<string>(() => {}), timeout: 50 });
    await request(a)
      .post('/token')
      .set('x-tokensec-handshake', (await header(SECRET)).value)
      .expect(503, { code: 'ERR_TOKENSEC_TIMEOUT' });
  });

  it('the payload function gets an AbortSignal that fires on timeout', async () => {
    let signal: AbortSignal | undefined;
    const { app: a } = app({
      timeout: 50,
      payload: (_req, _res, context) => {
        signal = context.signal;
        return new Promise<string>(() => {});
      },
    });
    await request(a)
      .post('/token')
      .set('x-tokensec-handshake', (await header(SECRET)).value)
      .expect(503);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toMatchObject({ code: 'ERR_TOKENSEC_TIMEOUT' });
  });

  it('the payload function gets an AbortSignal that fires when the client disconnects', async () => {
    let resolveAborted: (reason: unknown) => void = () => {};
    const aborted = new Promise((resolve) => (resolveAborted = resolve));
    let started: () => void = () => {};
    const running = new Promise<void>((resolve) => (started = resolve));
    const { app: a } = app({
      payload: (_req, _res, { signal }) => {
        signal.addEventListener('abort', () => resolveAborted(signal.reason));
        started();
        return new Promise<string>(() => {});
      },
    });
    const server = await listen(a);
    servers.push(server);
    const controller = new AbortController();
    const pending = fetch(`${server.origin}/token`, {
      method: 'POST',
      headers: { 'x-tokensec-handshake': (await header(SECRET)).value },
      signal: controller.signal,
    });
    await running;
    controller.abort();
    await expect(pending).rejects.toThrow();
    expect(await aborted).toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
  });
});

describe('the deadline, made only when an app function waits', () => {
  const response = () => new ServerResponse(new IncomingMessage(new Socket()));
  const never = () => new Promise<string>(() => {});

  it('counts from the first app function, even one that returned at once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const deadline = new HandshakeDeadline(response(), 50);
      expect(deadline.call(() => 'secret')).toBe('secret');
      vi.advanceTimersByTime(30);
      let outcome: unknown;
      Promise.resolve(deadline.call(never)).catch((error: unknown) => (outcome = error));
      await vi.advanceTimersByTimeAsync(19);
      expect(outcome).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1); // 50 ms after the first call, not after this one
      expect(outcome).toMatchObject({ code: 'ERR_TOKENSEC_TIMEOUT', status: 503 });
      deadline.dispose();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a client gone before the first waiting function: its signal is already aborted', async () => {
    const res = response();
    res.destroy();
    const deadline = new HandshakeDeadline(res, 10_000);
    await expect(deadline.call(never)).rejects.toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
    expect(deadline.signal.reason).toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
    deadline.dispose();
  });

  it('a synchronous throw comes back synchronously', () => {
    const deadline = new HandshakeDeadline(response(), 50);
    expect(() =>
      deadline.call(() => {
        throw new Error('db down');
      }),
    ).toThrow('db down');
  });
});

describe('the answer', () => {
  it('keeps Cache-Control: no-store when a later handler (terminate: false) sets caching headers', async () => {
    for (const later of [
      ((_req, res) => res.set('Cache-Control', 'public, max-age=3600').json({ next: true })) as express.RequestHandler,
      ((_req, res) =>
        res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end('x')) as express.RequestHandler,
      ((_req, res) => res.writeHead(200, ['Cache-Control', 'max-age=60']).end('x')) as express.RequestHandler,
    ]) {
      const { app: a } = app({}, later);
      const response = await request(a)
        .post('/token')
        .set('x-tokensec-handshake', (await header(SECRET)).value)
        .expect(200);
      expect(response.headers['cache-control']).toBe('no-store');
      expect(response.headers['x-tokensec-handshake']).toBeDefined();
    }
  });

  it('a path longer than 65,535 bytes → 414 ERR_TOKENSEC_PATH_TOO_LONG, not a RangeError', async () => {
    const seen: TokenSecError[] = [];
    const path = `/token${'/x'.repeat(33_000)}`;
    const long = express();
    long.use(tokenSec.handshake({ payload: TOKEN, secret: SECRET, dpop: { required: false } }));
    long.use((err: TokenSecError, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      seen.push(err);
      res.status(err.status ?? 500).json({ code: err.code });
    });
    const longServer = createServer({ maxHeaderSize: 1 << 20 }, long);
    await new Promise<void>((resolve) => longServer.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise((resolve) => longServer.close(() => resolve())) });
    const longPort = (longServer.address() as import('node:net').AddressInfo).port;
    const refused = await fetch(`http://127.0.0.1:${longPort}${path}`, {
      method: 'POST',
      headers: { 'x-tokensec-handshake': (await header(SECRET)).value },
    });
    expect(refused.status).toBe(414);
    expect(await refused.json()).toEqual({ code: 'ERR_TOKENSEC_PATH_TOO_LONG' });
    expect(seen[0]).toBeInstanceOf(TokenSecError);
  });

  it('an absolute-form request target binds its path', async () => {
    const { app: a } = app({ terminate: true });
    const server = await listen(a);
    servers.push(server);
    const { keys, target, value } = await header(SECRET, 'POST', '/token');
    const { port } = new URL(server.origin);
    // A raw request with an absolute-form target, as a client of a forward proxy sends it.
    const net = await import('node:net');
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => {
        socket.end(
          `POST http://127.0.0.1:${port}/token HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nx-tokensec-handshake: ${value}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
        );
      });
      let data = '';
      socket.on('data', (chunk) => (data += chunk));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 200/);
    const sealed = defined(/x-tokensec-handshake: (\S+)/i.exec(raw)?.[1], 'response header');
    expect(await openResponse(crypto.subtle, keys, SECRET, target, sealed)).toBe(TOKEN);
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
