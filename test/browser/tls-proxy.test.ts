/**
 * Behind a real TLS-terminating proxy: Debian's nginx on a free loopback port with a throwaway
 * self-signed certificate, in front of an Express app, and Chromium loading the page over HTTPS
 * under a name that is not localhost (so Web Crypto is there because the page is HTTPS, not
 * because it is loopback). The handshake and a DPoP-protected API call go through nginx; then
 * large tokens against nginx's default buffers: where a header-only answer breaks (502), and
 * that the body form (the default) carries every payload size the server allows.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import session from 'express-session';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { launchChromium } from '../support/chromium.js';
import { listen } from '../support/helpers.js';
import { startNginx, type NginxProxy } from '../support/nginx.js';

const NAME = 'app.tokensec.test';
const TOKEN_KEY = randomBytes(32);

/**
 * A token of `bytes` bytes (base64url skips some lengths, so up to 2 fewer), bound to the DPoP key
 * (`cnf.jkt`) and MACed by the app: `<claims, base64url>.<HMAC>`, the claims padded to the size.
 */
function mintToken(jkt: string | undefined, bytes: number): string {
  const now = Math.floor(Date.now() / 1000);
  const make = (pad: number) => {
    const claims = Buffer.from(JSON.stringify({ sub: 'user-1', iat: now, exp: now + 300, cnf: { jkt }, pad: 'p'.repeat(pad) }));
    const encoded = claims.toString('base64url');
    return `${encoded}.${createHmac('sha256', TOKEN_KEY).update(encoded).digest('base64url')}`;
  };
  let pad = 0;
  while (make(pad + 1).length <= bytes) pad++;
  return make(pad);
}

function verifyToken(token: string): Record<string, unknown> {
  const [claims = '', mac = ''] = token.split('.');
  const expected = createHmac('sha256', TOKEN_KEY).update(claims).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new Error('bad token');
  return { ...JSON.parse(Buffer.from(claims, 'base64url').toString()), bytes: token.length };
}

function createApp() {
  const app = express();
  app.set('trust proxy', 'loopback'); // nginx says the page was HTTPS (X-Forwarded-Proto): the DPoP htu is https://
  app.use(session({ secret: randomBytes(16).toString('hex'), resave: false, saveUninitialized: true, cookie: { secure: true } }));
  app.use(csrfSync().csrfSynchronisedProtection);
  app.use(tokenSec.initialize({ cookie: true }));
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));
  app.get('/', (_req, res) =>
    res.type('html').send('<!doctype html><title>TokenSec behind nginx</title><script src="/tokensec-session.js"></script>'),
  );
  const payload = (req: express.Request, _res: express.Response, { jkt }: { jkt?: string }) => mintToken(jkt, Number(req.params.bytes));
  // The default: header form up to headerLimit (3072 characters), body form beyond it.
  app.post('/api/token/:bytes', tokenSec.handshake({ payload, terminate: true }));
  // Header form only, as wide as the protocol allows: what a proxy's header buffer does to it.
  app.post('/api/token-header-only/:bytes', tokenSec.handshake({ payload, terminate: true, headerLimit: 8322 }));
  // The app renders the answer itself: a large payload cannot move to the body.
  app.post('/api/token-next/:bytes', tokenSec.handshake({ payload }), (_req, res) => res.json({ ok: true }));
  app.get('/api/me', tokenSec.dpop({ verifyToken }), (req, res) =>
    res.json({ jkt: req.tokenSec?.jkt, bytes: (req.tokenSec?.claims as { bytes: number }).bytes, protocol: req.protocol }),
  );
  app.use(tokenSec.errorHandler());
  return app;
}

let browser: Browser;
let nginx: NginxProxy;
let closeApp: () => Promise<void>;
let page: Page;

beforeAll(async () => {
  const app = await listen(createApp());
  closeApp = app.close;
  nginx = await startNginx({ serverName: NAME, upstreamPort: Number(new URL(app.origin).port) });
  browser = await launchChromium([`--host-resolver-rules=MAP ${NAME} 127.0.0.1`, `--ignore-certificate-errors-spki-list=${nginx.spki}`]);
  page = await browser.newPage();
  await page.goto(`${nginx.origin}/`);
});
afterAll(async () => {
  await browser?.close();
  await nginx?.stop();
  await closeApp?.();
});

/** In the page: a session on `/api/token…/<bytes>`, its token, and an API call with it. */
function tokenAndApiCall(route: string, bytes: number) {
  return page.evaluate(
    async ({ route, bytes }) => {
      const w = window as unknown as {
        TokenSec: {
          session(o: { uri: string; retries: number }): {
            getToken(): Promise<string>;
            fetch(input: string): Promise<Response>;
            clear(): void;
          };
        };
      };
      const s = w.TokenSec.session({ uri: `${route}/${bytes}`, retries: 0 });
      try {
        const token: string = await s.getToken();
        const api = await s.fetch('/api/me');
        return { ok: true as const, length: token.length, api: { status: api.status, body: await api.json() } };
      } catch (error) {
        const { code, status } = error as { code: string; status?: number };
        return { ok: false as const, code, status };
      } finally {
        s.clear();
      }
    },
    { route, bytes },
  );
}

describe('behind nginx terminating TLS, in Chromium under a non-localhost name', () => {
  it('the page is an HTTPS secure context under its own name, served through nginx', async () => {
    expect(
      await page.evaluate(() => ({ origin: location.origin, secure: isSecureContext, subtle: typeof crypto.subtle?.deriveBits })),
    ).toEqual({ origin: nginx.origin, secure: true, subtle: 'function' });
    expect(nginx.origin).toMatch(/^https:\/\/app\.tokensec\.test:\d+$/);
  });

  it('the handshake and a DPoP-protected API call go through it', async () => {
    const jkt = await page.evaluate(
      async () =>
        (await (window as unknown as { TokenSec: { getDpopKey(): Promise<{ thumbprint: string }> } }).TokenSec.getDpopKey()).thumbprint,
    );
    const result = await tokenAndApiCall('/api/token', 900);
    expect(result).toMatchObject({ ok: true, api: { status: 200, body: { jkt, protocol: 'https' } } });
    expect(result.ok && result.length).toBeGreaterThanOrEqual(898);
    expect(result.ok && result.api.body.bytes).toBe(result.ok && result.length);
  });
});

describe("large tokens against nginx's default buffers (proxy_buffer_size 4k, large_client_header_buffers 8k)", () => {
  it('header form only: nginx answers 502 beyond its response-header buffer, from about 2,600 bytes of payload with this app’s headers', async () => {
    // Binary search for the largest payload a header-only answer gets through nginx with.
    let fits = 1000;
    let breaks = 6144;
    while (breaks - fits > 1) {
      const mid = (fits + breaks) >> 1;
      const result = await tokenAndApiCall('/api/token-header-only', mid);
      if (result.ok) fits = mid;
      else {
        expect(result).toEqual({ ok: false, code: 'ERR_TOKENSEC_HTTP_STATUS', status: 502 });
        breaks = mid;
      }
    }
    console.log(`nginx defaults: a header-only answer gets through with a payload of up to ${fits} bytes, 502 from ${breaks}`);
    // Where exactly depends on the app's other headers (here a session cookie, the CSRF cookie).
    expect(fits).toBeGreaterThan(2400);
    expect(fits).toBeLessThan(2900);
    expect(nginx.errorLog()).toContain('upstream sent too big header');
  });

  it.each([1000, 2200, 2400, 3000, 4096, 6144])(
    'the default (body form beyond 3072 characters): a %i-byte token arrives, and the API call with it passes nginx',
    async (bytes) => {
      const answers: { fields: number; body: number }[] = [];
      const onResponse = async (response: import('playwright-core').Response) => {
        if (!response.url().includes('/api/token/')) return;
        const head = (await response.allHeaders())['x-tokensec-handshake'] ?? '';
        answers.push({ fields: head.split('.').length, body: (await response.body()).length });
      };
      page.on('response', onResponse);
      const result = await tokenAndApiCall('/api/token', bytes);
      page.off('response', onResponse);
      expect(result).toMatchObject({ ok: true, api: { status: 200 } });
      expect(result.ok && result.length).toBeGreaterThanOrEqual(bytes - 2);
      expect(result.ok && result.api.body.bytes).toBe(result.ok && result.length);
      await expect.poll(() => answers.length).toBe(1);
      // About 2,200 bytes fit a 3072-character header; beyond, the ciphertext is the body.
      expect(answers[0]?.fields).toBe(bytes <= 2200 ? 4 : 3);
      if (bytes > 2200) expect(answers[0]?.body).toBeGreaterThan(bytes);
    },
  );

  it('terminate: false beyond headerLimit: a clear 500 ERR_TOKENSEC_PAYLOAD_TOO_LARGE through nginx, not a 502', async () => {
    const bodies: unknown[] = [];
    const onResponse = async (response: import('playwright-core').Response) => {
      if (response.url().includes('/api/token-next/')) bodies.push(await response.json());
    };
    page.on('response', onResponse);
    const result = await tokenAndApiCall('/api/token-next', 3000);
    page.off('response', onResponse);
    expect(result).toEqual({ ok: false, code: 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE', status: 500 });
    await expect.poll(() => bodies).toEqual([expect.objectContaining({ code: 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE' })]);
  });
});
