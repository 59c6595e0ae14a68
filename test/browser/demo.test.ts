/** The demo app (`npm start`), driven in Chromium as a user would, and its API from Node. */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: the demo is plain JavaScript, importing tokensec by package name
import { DEMO_USER, createDemoApp } from '../../examples/demo/server.mjs';
import { launchChromium } from '../support/chromium.js';
import { defined, listen } from '../support/helpers.js';

const state = (page: Page, step: string) => page.getAttribute(`#step-${step}`, 'data-state');
const detail = (page: Page, step: string) => page.textContent(`#step-${step} .detail`);

describe('demo in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(() => browser?.close());

  async function open(tokenTtl: number) {
    const server = await listen(createDemoApp({ tokenTtl }));
    const context = await browser.newContext();
    const page = await context.newPage();
    const violations: string[] = [];
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
    const bearer: string[] = [];
    page.on('request', (r) => {
      const auth = r.headers().authorization;
      if (auth?.startsWith('Bearer ')) bearer.push(auth.slice(7));
    });
    await page.exposeFunction('reportViolation', (v: string) => violations.push(v));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        (window as unknown as { reportViolation: (v: string) => void }).reportViolation(`${e.violatedDirective} ${e.blockedURI}`),
      );
    });
    await page.goto(`${server.origin}/`);
    const close = async () => {
      await context.close();
      await server.close();
    };
    return { page, bearer, violations, errors, close };
  }

  it('log in → handshake → protected API → token only in memory → log out → both refuse', async () => {
    const { page, bearer, violations, errors, close } = await open(60);
    try {
      expect(await state(page, 'csrf')).toBe('done');
      await page.fill('input[name=password]', DEMO_USER.password);
      await page.click('#login button');
      await page.waitForSelector('#step-api[data-state="done"]');
      expect(await state(page, 'login')).toBe('done');
      expect(await page.isVisible('#login')).toBe(false);
      expect(await page.isVisible('#controls')).toBe(true);
      expect(await state(page, 'handshake')).toBe('done');
      expect(await detail(page, 'api')).toContain('this came from a protected API');
      const claims = JSON.parse((await page.textContent('#claims'))!);
      expect(claims).toMatchObject({ sub: 'demo', iss: 'tokensec-demo', aud: 'tokensec-demo-api' });
      expect(claims.exp - claims.iat).toBe(60);
      await page.waitForFunction(() => /^\d+ s$/.test(document.getElementById('time-left')!.textContent!));
      expect(Number((await page.textContent('#time-left'))!.replace(' s', ''))).toBeGreaterThan(50);

      // The token is a JWT that reached the page, and it is in no storage the page can read.
      const token = defined(bearer[0], 'the bearer token the page sent');
      expect(token.split('.')).toHaveLength(3);
      const stored = await page.evaluate(() => ({
        local: JSON.stringify({ ...localStorage }),
        session: JSON.stringify({ ...sessionStorage }),
        cookie: document.cookie,
      }));
      for (const place of Object.values(stored)) expect(place).not.toContain(token);
      expect(stored.cookie).not.toContain('demo.sid'); // the session cookie is HttpOnly
      expect((await page.context().cookies()).map((c) => c.value).join()).not.toContain(token);

      await page.click('#logout');
      await page.waitForSelector('#step-logout:not([data-state="pending"])');
      expect(await state(page, 'logout')).toBe('refused');
      expect(await page.isVisible('#login')).toBe(true);
      expect(await page.isVisible('#controls')).toBe(false);
      expect(await detail(page, 'logout')).toMatch(/Handshake: ERR_TOKENSEC_HTTP_STATUS 401; API with the old token: 401 session_ended/);
      mkdirSync('test-results', { recursive: true });
      await page.screenshot({ path: 'test-results/demo.png', fullPage: true });
      expect(violations).toEqual([]); // strict CSP, nothing blocked
      expect(errors.filter((e) => !/401/.test(e))).toEqual([]);
    } finally {
      await close();
    }
  });

  it('fetches a new token before the old one expires', async () => {
    const { page, bearer, close } = await open(3);
    try {
      await page.fill('input[name=password]', DEMO_USER.password);
      await page.click('#login button');
      await page.waitForSelector('#step-refresh[data-state="done"]', { timeout: 10_000 });
      expect(await state(page, 'api')).toBe('done');
      expect(new Set(bearer).size).toBeGreaterThanOrEqual(2);
    } finally {
      await close();
    }
  });

  it('shows a failed login with its code', async () => {
    const { page, close } = await open(60);
    try {
      await page.fill('input[name=password]', 'wrong');
      await page.click('#login button');
      await page.waitForSelector('#step-login[data-state="failed"]');
      expect(await detail(page, 'login')).toContain('BAD_CREDENTIALS');
    } finally {
      await close();
    }
  });
});

describe('demo API', () => {
  it('401 with a JSON error for a missing, bad or expired token', async () => {
    const app = createDemoApp({ tokenTtl: 1 });
    await request(app).get('/api/me').expect(401, { error: 'missing_token', message: 'Send Authorization: Bearer <token>.' });
    const bad = await request(app).get('/api/me').set('authorization', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA').expect(401);
    expect(bad.body.error).toBe('invalid_token');

    // A real token, from a real handshake in Node, used after it expired.
    const { handshake } = await import('../../client/index.js');
    const server = await listen(app);
    try {
      // A minimal cookie jar: the latest Set-Cookie for a name wins.
      const jar = new Map<string, string>();
      const keep = (res: Response) => {
        for (const c of res.headers.getSetCookie()) {
          const pair = c.split(';', 1).join('');
          jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
        }
        return res;
      };
      const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const csrf = () => decodeURIComponent(jar.get('tokensec')!);
      keep(await fetch(`${server.origin}/`));
      const login = keep(
        await fetch(`${server.origin}/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': csrf(), cookie: cookie() },
          body: JSON.stringify(DEMO_USER),
        }),
      );
      expect(login.status).toBe(200);
      keep(await fetch(`${server.origin}/api/session`, { headers: { cookie: cookie() } }));
      const cookies = [cookie()];
      const token = await handshake({ uri: `${server.origin}/api/token`, csrfToken: csrf(), headers: { cookie: cookies.join('; ') } });
      const ok = await fetch(`${server.origin}/api/me`, { headers: { authorization: `Bearer ${token}`, cookie: cookies.join('; ') } });
      expect(ok.status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const expired = await fetch(`${server.origin}/api/me`, { headers: { authorization: `Bearer ${token}`, cookie: cookies.join('; ') } });
      expect(expired.status).toBe(401);
      expect((await expired.json()).error).toBe('token_expired');
    } finally {
      await server.close();
    }
  });
});
