/**
 * examples/spa: a Preact app built with Vite's JS API, as users build theirs, in Chromium. The app
 * server (127.0.0.1) logs the user in and answers the handshake; the API runs on another origin,
 * `api.test` (a second name for 127.0.0.1, through Chromium's host resolver), behind
 * tokenSec.dpop() with server nonces and CORS. The page runs under `script-src 'self'`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: the example is plain JavaScript, importing tokensec by package name
import { DEMO_USER, buildSpa, startSpa } from '../../examples/spa/server.mjs';
import { launchChromium } from '../support/chromium.js';
import { defined } from '../support/helpers.js';

const API_HOST = 'api.test';

describe('SPA example (Vite + Preact, API on another origin)', () => {
  let browser: Browser;
  let dist: string;
  beforeAll(async () => {
    dist = await buildSpa(mkdtempSync(join(tmpdir(), 'tokensec-spa-')));
    browser = await launchChromium([`--host-resolver-rules=MAP ${API_HOST} 127.0.0.1`]);
  });
  afterAll(async () => {
    await browser?.close();
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  it('the Vite build has no inline script and no inline style', () => {
    const html = readFileSync(join(dist, 'index.html'), 'utf8');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBe(1);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/\bsrc="\/assets\/[\w-]+\.js"/);
      expect(body).toBe('');
    }
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });

  it('logs in, gets a token on the app origin, and calls the API on another origin with DPoP after its nonce challenge', async () => {
    const { appOrigin, apiOrigin, close } = await startSpa({ dist, apiHost: API_HOST });
    const context = await browser.newContext();
    try {
      expect(new URL(apiOrigin).hostname).toBe(API_HOST);
      const page = await context.newPage();
      const violations: string[] = [];
      const errors: string[] = [];
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(String(e)));
      const api: { status: number; request: Record<string, string>; response: Record<string, string> }[] = [];
      page.on('response', async (r) => {
        if (r.url() === `${apiOrigin}/hello` && r.request().method() === 'GET') {
          api.push({ status: r.status(), request: await r.request().allHeaders(), response: await r.allHeaders() });
        }
      });
      await page.exposeFunction('reportViolation', (v: string) => violations.push(v));
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) =>
          (window as unknown as { reportViolation: (v: string) => void }).reportViolation(`${e.violatedDirective} ${e.blockedURI}`),
        );
      });

      const landing = await page.goto(`${appOrigin}/`);
      expect(landing?.headers()['content-security-policy']).toContain("script-src 'self'");
      await page.fill('input[name=username]', DEMO_USER.username);
      await page.fill('input[name=password]', DEMO_USER.password);
      await page.click('#login button');
      await page.waitForSelector('#user');
      expect(await page.textContent('#user')).toBe(`Logged in as ${DEMO_USER.username}`);

      await page.click('#call');
      await page.waitForSelector('#answer, .error'); // a refusal shows its code in .error
      expect(await (await page.$('.error'))?.textContent()).toBeUndefined();
      expect(await page.textContent('#answer')).toBe(`Hello ${DEMO_USER.username}, from the API.`);
      await page.waitForSelector('#expiry');

      // The API asked for a nonce (401 use_dpop_nonce, headers exposed by CORS); the session retried with it.
      await expect.poll(() => api.length).toBe(2);
      expect(api.map((a) => a.status)).toEqual([401, 200]);
      const [challenge, answered] = [defined(api[0], 'the challenge'), defined(api[1], 'the answer')];
      expect(challenge.response['www-authenticate']).toMatch(/error="use_dpop_nonce"/);
      const nonce = defined(challenge.response['dpop-nonce'], 'DPoP-Nonce');
      expect(challenge.response['access-control-expose-headers']).toMatch(/dpop-nonce/i);
      expect(answered.response['access-control-allow-origin']).toBe(appOrigin);
      expect(answered.response['access-control-allow-credentials']).toBe('true');
      expect(answered.request.origin).toBe(appOrigin);

      // The token was minted for the API and bound to the key that signed the proof, which carries the nonce.
      const token = defined(/^DPoP (.+)$/.exec(answered.request.authorization ?? '')?.[1], 'the DPoP token');
      const proof = defined(answered.request.dpop, 'the DPoP proof');
      const claims = decodeJwt(token) as { sub?: string; aud?: string; cnf?: { jkt?: string } };
      expect(claims).toMatchObject({ sub: DEMO_USER.username, aud: apiOrigin });
      expect(claims.cnf?.jkt).toBe(await calculateJwkThumbprint(decodeProtectedHeader(proof).jwk as JWK));
      expect(decodeJwt(proof)).toMatchObject({ htm: 'GET', htu: `${apiOrigin}/hello`, nonce });

      // The token alone is useless: the same API refuses it as a Bearer token.
      const copied = await fetch(`${apiOrigin.replace(API_HOST, '127.0.0.1')}/hello`, { headers: { authorization: `Bearer ${token}` } });
      expect(copied.status).toBe(401);
      expect(await copied.json()).toMatchObject({ code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });

      // Log out: the session forgets the token and the page shows the login form again.
      await page.click('#logout');
      await page.waitForSelector('#login');
      expect(violations).toEqual([]); // strict CSP: nothing blocked
      // Chromium logs the nonce challenge's 401 as a failed resource; nothing else went wrong.
      expect(errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
    } finally {
      await context.close();
      await close();
    }
  });
});
