/**
 * Threat table, "script in the page": a page with a reflected XSS (it echoes ?q= into its HTML).
 * The injected script calls TokenSec.handshake() as the app's own code does and sends the token
 * away. A strict Content Security Policy (script-src 'self') is what stops it: the same injection
 * then never runs.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchChromium } from '../support/chromium.js';
import { TOKEN, csrfApp, listen } from '../support/helpers.js';

const INJECTION = `<script>TokenSec.handshake({ uri: '/token' }).then((t) => fetch('/exfil?t=' + encodeURIComponent(t)))</script>`;

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(() => browser?.close());

async function visitWithInjection(csp: string | undefined): Promise<string[]> {
  const stolen: string[] = [];
  const { app } = csrfApp({}, undefined, (a) => {
    a.get('/search', (req, res) => {
      if (csp) res.set('Content-Security-Policy', csp);
      // The vulnerable page: the query is written into the HTML unescaped.
      res
        .type('html')
        .send(`<!doctype html><title>search</title><script src="/tokensec.js"></script><p>Results for ${String(req.query.q)}</p>`);
    });
    // The attacker's collection point (a GET, which the CSRF middleware lets through).
    a.get('/exfil', (req, res) => {
      stolen.push(String(req.query.t));
      res.status(204).end();
    });
  });
  const server = await listen(app);
  const context = await browser.newContext();
  try {
    const tab = await context.newPage();
    await tab.goto(`${server.origin}/`); // sets the CSRF cookies, as a visit to the app would
    await tab.goto(`${server.origin}/search?q=${encodeURIComponent(INJECTION)}`);
    await tab.waitForLoadState('networkidle');
    return stolen;
  } finally {
    await context.close();
    await server.close();
  }
}

it('today: injected script gets the token like the page does', async () => {
  expect(await visitWithInjection(undefined)).toEqual([TOKEN]);
});

it("a strict CSP (script-src 'self') keeps the injected script from running", async () => {
  expect(await visitWithInjection("script-src 'self'; connect-src 'self'")).toEqual([]);
});
