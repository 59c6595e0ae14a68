/**
 * The request target the handshake binds: a path over 65,535 bytes refused, an absolute-form
 * target bound by its path.
 */
import { createServer } from 'node:http';
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { openResponse } from '../../../client/crypto.js';
import tokenSec, { TokenSecError } from '../../../src/index.js';
import { plainHandshakeApp as app, PLAIN_SECRET as SECRET, x25519Header as header } from '../../support/handshake.js';
import { TOKEN, defined, listen } from '../../support/helpers.js';
import { randomBytes } from 'node:crypto';
import { canonicalHtu } from '../../../src/protocol/htu.js';
import { namedOrigin, readRequestTarget, targetUrl } from '../../../src/server/request-target.js';

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

describe('the request target, read once; htu without a URL parse', () => {
  it('the bound path and the absolute-form origin', () => {
    expect(readRequestTarget({ url: '/a/b?x=1#f' })).toEqual({ path: '/a/b', absoluteOrigin: undefined });
    expect(readRequestTarget({ originalUrl: '/api/me', url: '/me' })).toEqual({ path: '/api/me', absoluteOrigin: undefined });
    expect(readRequestTarget({ url: 'http://App.Example:8080/token?x' })).toEqual({
      path: '/token',
      absoluteOrigin: 'http://App.Example:8080',
    });
    expect(readRequestTarget({ url: 'http://host' })).toEqual({ path: '/', absoluteOrigin: 'http://host' });
    expect(readRequestTarget({ url: '' })).toEqual({ path: '/', absoluteOrigin: undefined });
    expect(readRequestTarget({})).toEqual({ path: '/', absoluteOrigin: undefined });
  });

  const origins = [
    'https://app.example',
    'https://APP.Example',
    'https://app.example:443',
    'http://app.example:80',
    'http://127.0.0.1:8080',
    'http://[::1]:3000',
    'https://0x7f.1',
    'https://xn--nxasmq6b.example',
    'https://app.example.',
    'https://h:99999',
    'ftp://app.example',
    'https://user@app.example',
    'https://app.example?q',
    'https://bücher.example',
    'http://',
    'http://@app.example',
    'http://app.example:08080',
    'http://2130706433:8080',
    'http://127.000.000.001',
    'http://127.0.0.1.',
  ];
  const paths = [
    '/',
    '/token',
    '/a/b/c',
    "/a-._~!$&'()*+,;=:@b",
    '//double',
    '/a/./b',
    '/a/../b',
    '/a/.',
    '/a/..',
    '/.a/..b/...',
    '/%7e%41%2f%2e%2E/x',
    '/a%2e%2e/%2e%2e/b',
    '/a b',
    '/é',
    '/a\\b',
    '/a|b{c}`d^e"f<g>',
    '/%zz%4',
    '/café',
    '/a ',
    '/a\t',
    'noslash',
    '*',
  ];
  const alphabet = ['a', 'Z', '0', '-', '.', '_', '~', '/', '%', '2', 'e', 'E', 'f', '\\', ' ', 'é', ':', '@', "'", '|', '"', '[', ']'];
  const random = Array.from({ length: 2000 }, () => {
    const bytes = randomBytes(1 + (randomBytes(1)[0]! % 12));
    return `/${Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('')}`;
  });

  it('targetUrl(origin, path) is exactly canonicalHtu(origin + path), on the fast path and off it', () => {
    for (const origin of origins) {
      for (const path of [...paths, ...random]) expect(targetUrl(origin, path), `${origin} ${path}`).toBe(canonicalHtu(origin + path));
      // Seen before (the origin cache), still the same.
      for (const path of paths) expect(targetUrl(origin, path)).toBe(canonicalHtu(origin + path));
    }
  });

  it('the fast path refuses what the slow path refuses: the forms RFC 3986 does not allow give no URL', () => {
    const refused: [string, string][] = [
      ['http://@app.example', '/token'],
      ['http://app.example:08080', '/token'],
      ['http://app.example:8080', '\\es'],
      ['http://app.example', '/token '],
      ['http://app.example', '/token\t'],
      ['http://2130706433:8080', '/token'],
      ['http://127.000.000.001', '/token'],
      ['http://127.0.0.1.', '/token'],
      ['http://app.example', '/café'],
    ];
    for (const [origin, path] of refused) {
      // Twice: the second call meets the origin in the cache.
      expect(targetUrl(origin, path), `${origin} ${path}`).toBeUndefined();
      expect(targetUrl(origin, path), `${origin} ${path}`).toBeUndefined();
      expect(canonicalHtu(origin + path)).toBeUndefined();
    }
    expect(targetUrl('http://127.0.0.1:8080', '/token')).toBe('http://127.0.0.1:8080/token');
  });

  it('a normalised URL is its own normalisation, so an htu equal to it needs no parse', () => {
    for (const origin of origins) {
      for (const path of [...paths, ...random]) {
        const normal = canonicalHtu(origin + path);
        if (normal !== undefined) expect(canonicalHtu(normal), normal).toBe(normal);
      }
    }
  });

  it('namedOrigin picks the origin a strict parse of htu names, if listed', () => {
    const listed = ['https://app.example', 'https://app.example:8443', 'http://[::1]:3000'];
    const parsed = (htu: unknown) => {
      const normal = typeof htu === 'string' ? canonicalHtu(htu) : undefined;
      const origin = normal?.replace(/^(https?:\/\/[^/]+).*$/, '$1');
      return origin !== undefined && listed.includes(origin) ? origin : undefined;
    };
    // A backslash is no path separator (WHATWG's parser reads it as one).
    expect(namedOrigin('https://app.example\\x', listed)).toBeUndefined();
    for (const htu of [
      'https://app.example/x',
      'https://app.example',
      'https://app.example:8443/x',
      'https://APP.example/x',
      'https://app.example:443/x',
      'https://app.example.evil/x',
      'https://app.example@evil/x',
      'https://app.example\\x',
      'http://[::1]:3000/t',
      'https://other.example/x',
      'not a url',
      42,
      undefined,
    ]) {
      expect(namedOrigin(htu, listed), String(htu)).toBe(parsed(htu));
    }
  });
});
