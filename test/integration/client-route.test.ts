import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import session from 'express-session';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { listen } from '../support/helpers.js';
import { startNginx } from '../support/nginx.js';

const bundle = (name: string) => readFileSync(new URL(`../../dist/browser/${name}`, import.meta.url), 'utf8');

function app(options?: Parameters<typeof tokenSec.client>[0]) {
  const a = express();
  a.get('/tokensec.js', tokenSec.client(options));
  a.post('/tokensec.js', tokenSec.client(options), (_req, res) => res.send('passed on'));
  return a;
}

describe('client()', () => {
  it('serves the minified UMD bundle as JavaScript, byte for byte the file tokenSec.integrity() hashes', async () => {
    const res = await request(app()).get('/tokensec.js').buffer(true).expect(200);
    expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['cache-control']).toBe('public, max-age=3600');
    expect(res.headers.etag).toMatch(/^"[\w-]{27}"$/);
    expect(res.text).toBe(bundle('tokensec.min.js'));
    expect(res.text).not.toContain('sourceMappingURL');
    expect(tokenSec.integrity()).toBe(`sha384-${createHash('sha384').update(res.text).digest('base64')}`);
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.text));
  });

  it('serves the readable bundle with minified: false, and ignores crypto (v2 has no CryptoJS variant)', async () => {
    const res = await request(app({ minified: false, crypto: true }))
      .get('/tokensec.js')
      .expect(200);
    expect(res.text.startsWith(bundle('tokensec.js').slice(0, 200))).toBe(true);
    expect(res.text.length).toBeGreaterThan(bundle('tokensec.min.js').length);
  });

  it('answers a matching If-None-Match with 304 and no body', async () => {
    const a = app();
    const { headers } = await request(a).get('/tokensec.js');
    const res = await request(a).get('/tokensec.js').set('if-none-match', `"other", ${headers.etag}`).expect(304);
    expect(res.text ?? '').toBe('');
    expect(res.headers.etag).toBe(headers.etag);
    await request(a).get('/tokensec.js').set('if-none-match', `W/${headers.etag}`).expect(304);
    await request(a).get('/tokensec.js').set('if-none-match', '"stale"').expect(200);
  });

  it('answers HEAD with the headers and no body', async () => {
    const a = app();
    const get = await request(a).get('/tokensec.js');
    const head = await request(a).head('/tokensec.js').expect(200);
    expect(head.headers['content-length']).toBe(get.headers['content-length']);
    expect(head.headers.etag).toBe(get.headers.etag);
    expect(head.text ?? '').toBe('');
  });

  it('passes other methods on', async () => {
    await request(app()).post('/tokensec.js').expect(200, 'passed on');
  });

  it.each([
    ['session', 'tokensec-session'],
    ['sealed', 'tokensec-sealed'],
    ['handshake', 'tokensec'],
  ] as const)("bundle: '%s' serves %s.min.js", async (name, file) => {
    const res = await request(app({ bundle: name }))
      .get('/tokensec.js')
      .expect(200);
    expect(res.text).toBe(bundle(`${file}.min.js`));
    expect(tokenSec.integrity({ bundle: name })).toBe(`sha384-${createHash('sha384').update(res.text).digest('base64')}`);
    const readable = await request(app({ bundle: name, minified: false })).get('/tokensec.js');
    expect(readable.text.startsWith(bundle(`${file}.js`).slice(0, 200))).toBe(true);
  });

  it('refuses an unknown bundle at startup, naming the choices', () => {
    expect(() => tokenSec.client({ bundle: 'sessions' as never })).toThrow(
      /tokenSec\.client\(\): option "bundle" must be 'handshake', 'session' or 'sealed', got 'sessions'\./,
    );
    expect(() => tokenSec.client({ bundle: 1 as never })).toThrow(/got number/);
  });

  it('integrity() checks its options like client()', () => {
    expect(() => tokenSec.integrity({ bundle: 'x' as never })).toThrow(/tokenSec\.integrity\(\): option "bundle" must be/);
    expect(() => tokenSec.integrity({ minify: true } as never)).toThrow(/unknown option "minify"\. Did you mean "minified"\?/);
    expect(tokenSec.integrity({ minified: false })).toMatch(/^sha384-[A-Za-z0-9+/]{64}$/);
  });

  it('dist/browser ships no source maps: the readable builds are the debuggable form', () => {
    expect(readdirSync(new URL('../../dist/browser/', import.meta.url)).filter((f) => f.endsWith('.map'))).toEqual([]);
  });

  it('takes maxAge in seconds', async () => {
    const res = await request(app({ maxAge: 60 })).get('/tokensec.js');
    expect(res.headers['cache-control']).toBe('public, max-age=60');
  });
});

/**
 * The script is cacheable, so it must never carry one visitor's cookies: through a real nginx that
 * caches it even with Set-Cookie (`proxy_ignore_headers Set-Cookie`, what a CDN configured to
 * cache static files does; nginx's defaults would not cache such a response, and a test without
 * that line would prove nothing), a second visitor never receives the first visitor's cookies.
 */
describe('client() behind a caching proxy', () => {
  type Order = 'initialize first (README order)' | 'client first';
  function cookieApp(order: Order) {
    const a = express();
    a.use(session({ name: 'sid', secret: 'client-route cache test', resave: false, saveUninitialized: false }));
    a.use(csrfSync().csrfSynchronisedProtection);
    if (order === 'client first') a.get('/tokensec.js', tokenSec.client());
    a.use(tokenSec.initialize({ cookie: true }));
    if (order !== 'client first') a.get('/tokensec.js', tokenSec.client());
    return a;
  }
  const get = (port: number, path: string) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1',
        port,
        path,
        servername: 'cdn.test',
        headers: { host: 'cdn.test' },
        rejectUnauthorized: false,
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    });

  it.each<Order>(['initialize first (README order)', 'client first'])(
    '%s: no tokensec cookie, and private while another cookie remains',
    async (order) => {
      // A script load: initialize() asks for no CSRF token, so no session is made and the script stays public.
      const plain = await request(cookieApp(order)).get('/tokensec.js').expect(200);
      expect(plain.headers['set-cookie']).toBeUndefined();
      expect(plain.headers['cache-control']).toBe('public, max-age=3600');
      // The script's URL opened in a tab (a page load accepts HTML): initialize() hands out a token, which client() drops.
      const res = await request(cookieApp(order)).get('/tokensec.js').set('accept', 'text/html').expect(200);
      const cookies = res.headers['set-cookie'] as unknown as string[] | undefined;
      expect((cookies ?? []).filter((c) => c.startsWith('tokensec='))).toEqual([]);
      if (order === 'client first') {
        expect(cookies).toBeUndefined();
        expect(res.headers['cache-control']).toBe('public, max-age=3600');
      } else {
        // initialize() asked csrf-sync for a token, so express-session saves a new session.
        expect(cookies?.map((c) => c.split('=')[0])).toEqual(['sid']);
        expect(res.headers['cache-control']).toBe('private, max-age=3600');
      }
    },
  );

  it.each<Order>(['initialize first (README order)', 'client first'])(
    "%s: through nginx with proxy_cache, a second visitor never receives the first visitor's cookies",
    async (order) => {
      const upstream = await listen(cookieApp(order));
      const proxy = await startNginx({
        serverName: 'cdn.test',
        upstreamPort: Number(new URL(upstream.origin).port),
        http: 'proxy_cache_path $dir/cache keys_zone=scripts:1m;',
        extra:
          'proxy_cache scripts;\n    proxy_cache_valid 200 10m;\n    proxy_ignore_headers Set-Cookie;\n    add_header X-Cache $upstream_cache_status always;',
      });
      try {
        const first = await get(proxy.port, '/tokensec.js');
        const second = await get(proxy.port, '/tokensec.js');
        expect([first.status, second.status]).toEqual([200, 200]);
        const firstCookies = first.headers['set-cookie'] ?? [];
        const secondCookies = second.headers['set-cookie'] ?? [];
        for (const cookie of firstCookies) expect(secondCookies).not.toContain(cookie);
        expect([...firstCookies, ...secondCookies].filter((c) => c.startsWith('tokensec='))).toEqual([]);
        // No cookie at all, whatever the order (initialize() makes no session for a script): cached and shared, as it should be.
        expect(second.headers['x-cache']).toBe('HIT');
        expect(secondCookies).toEqual([]);
      } finally {
        await proxy.stop();
        await upstream.close();
      }
    },
    60_000,
  );
});
