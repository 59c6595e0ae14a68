/**
 * Threat table, "script in the page": a page with a reflected XSS (it echoes ?q= into its HTML).
 * The injected script calls TokenSec.handshake() as the app's own code does, tries to export the
 * page's DPoP key, and sends what it got away. It gets the token but not the key: the token is
 * bound to the key (cnf.jkt), so the attacker's copy is refused by the API behind tokenSec.dpop().
 * While the page is open the script can still use the key through TokenSec, as the page does. A
 * strict Content Security Policy (script-src 'self') is what stops the script: it then never runs.
 */
import { SignJWT, jwtVerify } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { launchChromium } from '../support/chromium.js';
import { csrfApp, listen } from '../support/helpers.js';
import { joseProof, proofKey, sha256 } from '../support/proofs.js';

const INJECTION = `<script>
(async () => {
  const token = await TokenSec.handshake({ uri: '/token' });
  const key = await TokenSec.getDpopKey();
  const exported = await crypto.subtle.exportKey('jwk', key.privateKey).then((jwk) => JSON.stringify(jwk), (e) => e.name);
  await fetch('/exfil?t=' + encodeURIComponent(token) + '&k=' + encodeURIComponent(exported));
})();
</script>`;

const signingKey = new TextEncoder().encode('script-in-page HMAC key, 32 byte');
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(() => browser?.close());

async function visitWithInjection(csp: string | undefined) {
  const stolen: { token: string; key: string }[] = [];
  const { app } = csrfApp(
    {
      payload: (_req, _res, { jkt }) =>
        new SignJWT({ sub: 'alice', cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey),
    },
    undefined,
    (a) => {
      a.get('/search', (req, res) => {
        if (csp) res.set('Content-Security-Policy', csp);
        // The vulnerable page: the query is written into the HTML unescaped.
        res
          .type('html')
          .send(`<!doctype html><title>search</title><script src="/tokensec.js"></script><p>Results for ${String(req.query.q)}</p>`);
      });
      // The attacker's collection point (a GET, which the CSRF middleware lets through).
      a.get('/exfil', (req, res) => {
        stolen.push({ token: String(req.query.t), key: String(req.query.k) });
        res.status(204).end();
      });
      a.get('/api/me', tokenSec.dpop({ verifyToken }), (_req, res) => res.json({ ok: true }));
    },
  );
  const server = await listen(app);
  const context = await browser.newContext();
  try {
    const tab = await context.newPage();
    await tab.goto(`${server.origin}/`); // sets the CSRF cookies, as a visit to the app would
    await tab.goto(`${server.origin}/search?q=${encodeURIComponent(INJECTION)}`);
    await tab.waitForLoadState('networkidle');
    // The attacker, from its own machine, with what it collected and a key of its own.
    const attempts = await Promise.all(
      stolen.map(async ({ token }) => {
        const url = `${server.origin}/api/me`;
        const own = await proofKey();
        const asBearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        const withOwnKey = await fetch(url, {
          headers: { authorization: `DPoP ${token}`, dpop: await joseProof(own, { htm: 'GET', htu: url, ath: await sha256(token) }) },
        });
        return [asBearer.status, ((await withOwnKey.json()) as { code?: string }).code];
      }),
    );
    return { stolen, attempts };
  } finally {
    await context.close();
    await server.close();
  }
}

it('injected script gets the token but not the key, so its copy of the token is refused by the DPoP-protected API', async () => {
  const { stolen, attempts } = await visitWithInjection(undefined);
  expect(stolen).toHaveLength(1);
  expect(stolen[0]?.token.split('.')).toHaveLength(3); // the token itself left the page
  expect(stolen[0]?.key).toBe('InvalidAccessError'); // the private key did not
  expect(attempts).toEqual([[401, 'ERR_TOKENSEC_DPOP_INVALID_TOKEN']]);
});

it("a strict CSP (script-src 'self') keeps the injected script from running", async () => {
  expect((await visitWithInjection("script-src 'self'; connect-src 'self'")).stolen).toEqual([]);
});
