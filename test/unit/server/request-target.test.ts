/**
 * The request target the handshake binds: a path over 65,535 bytes refused, an absolute-form
 * target bound by its path.
 */
import { createServer } from 'node:http';
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { openResponse } from '../../../client/crypto.js';
import tokenSec, { TokenSecError } from '../../../src/index.js';
import { handshakeApp, handshakeHeader } from '../../support/handshake.js';
import { TOKEN, defined, listen } from '../../support/helpers.js';

const SECRET = 'hardening-secret-0123456789';

const header = (secret: string, method = 'POST', path = '/token') => handshakeHeader(secret, { method, path, algorithm: 'x25519' });

function app(options: Partial<Parameters<typeof tokenSec.handshake>[0]> = {}, after?: express.RequestHandler) {
  const { app: a, errors: seen } = handshakeApp(
    { payload: TOKEN, secret: SECRET, dpop: { required: false }, ...options },
    { mount: 'all', after: after ?? ((_req, res) => res.json({ next: true })) },
  );
  return { app: a, seen };
}

const servers: { close(): Promise<void> }[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

describe('the answer', () => {
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
