import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';

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
