/**
 * README.md as checked examples (convention: docs/ARCHITECTURE.md, "README code blocks"). Every
 * fenced block is either checked or marked exempt; js/ts blocks compile as written (alone, or
 * after the one prelude block README shows); json blocks parse; html pages load in Chromium under
 * the demo's Content Security Policy with no violation and no console error; and the blocks a
 * reader runs first (Server, Browser, Token session) run: the Server block is started on a free
 * port as a reader would start it, and Chromium opens each page it serves.
 */
import { join } from 'node:path';
import express from 'express';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
// @ts-expect-error: the demo is plain JavaScript, importing tokensec by package name
import { CSP } from '../../examples/demo/server.mjs';
import tokenSec from '../../src/index.js';
import { launchChromium } from '../support/chromium.js';
import {
  compileErrors,
  compileFailure,
  isCode,
  markingProblems,
  readmeBlocks,
  startReadmeServer,
  where,
  type ReadmeServer,
} from '../support/readme.js';
import { freePort } from '../support/net.js';

/** "https://app.example": the reader's pages and the client script, from another origin than the API, under a CSP. */
async function servePages(dir: string, port: number, csp: string) {
  const app = express();
  app.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', csp);
    next();
  });
  app.get('/tokensec.js', tokenSec.client());
  app.get('/favicon.ico', (_req, res) => res.status(204).end()); // Chromium asks for it; not README's concern
  app.use(express.static(join(dir, 'public')));
  const server = app.listen(port, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const blocks = readmeBlocks();
const label = (b: (typeof blocks)[number]) => `README.md:${b.line} ${b.heading} \`\`\`${b.info}`;

/**
 * A page's console errors, into `problems` once settled, less one per nonce challenge: a first
 * handshake or call to an origin gets 401 use_dpop_nonce (server nonces, on by default since 4.0),
 * which the client answers with one retry, and Chromium logs every 401 as a console error.
 */
function nonceChallenges(page: import('playwright-core').Page, problems: string[]) {
  const errors: string[] = [];
  let challenges = 0;
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return {
    is: (r: import('playwright-core').Response) => {
      const challenge = r.status() === 401 && /use_dpop_nonce/.test(r.headers()['www-authenticate'] ?? '');
      if (challenge) challenges++;
      return challenge;
    },
    settle: () => {
      for (const text of errors) {
        if (challenges > 0 && /status of 401/.test(text)) challenges--;
        else problems.push(`console error: ${text}`);
      }
    },
  };
}

describe('README code blocks', () => {
  it('every block is checked or marked exempt', () => {
    const problems = blocks.flatMap((b) => markingProblems(b, blocks));
    if (problems.length) expect.fail(problems.join('\n\n'));
    expect(blocks.length).toBeGreaterThan(10);
  });

  it.each(blocks.filter(isCode).map((b) => [label(b), b] as const))(
    '%s compiles',
    (_, block) => {
      const errors = compileErrors(block, blocks);
      if (errors.length) expect.fail(compileFailure(block, errors));
    },
    90_000,
  ); // the first program loads @types/node and the libs; later ones reuse them

  it.each(blocks.filter((b) => b.lang === 'json' && b.attrs.exempt === undefined).map((b) => [label(b), b] as const))(
    '%s parses',
    (_, block) => {
      expect(() => JSON.parse(block.code), `${where(block)} is not JSON`).not.toThrow();
    },
  );
});

/**
 * The pages README shows, run against the Server block, in Chromium under the demo's CSP. The
 * first two are what a reader runs first; each must show the protected API's answer: claims
 * bound to the page's DPoP key.
 */
const RUN_FIRST: Record<string, { section: string; check: (page: Page) => Promise<void> }> = {
  'public/index.html': {
    section: 'Browser',
    check: async (page) => {
      await page.waitForFunction(() => (document.querySelector('#me')?.textContent ?? '').includes('"jkt"'), null, { timeout: 20_000 });
    },
  },
  'public/other-origin.html': {
    section: 'API on another origin',
    check: async (page) => {
      await page.waitForFunction(() => (document.querySelector('#me')?.textContent ?? '').includes('"jkt"'), null, { timeout: 20_000 });
    },
  },
  'public/session.html': {
    section: 'Token session',
    check: async (page) => {
      await page.waitForFunction(() => (document.querySelector('#me')?.textContent ?? '').includes('"jkt"'), null, { timeout: 20_000 });
      await page.waitForFunction(() => (document.querySelector('#expiry')?.textContent ?? '') !== '', null, { timeout: 20_000 });
    },
  },
};

/**
 * A reader's user who has logged in: the Server block's login (a POST with the CSRF token that
 * `initialize` put in the `tokensec` cookie) gives the context a session with a user.
 */
async function logIn(context: BrowserContext, origin: string): Promise<void> {
  await context.request.get(`${origin}/`);
  const csrf = (await context.cookies(origin)).find((c) => c.name === 'tokensec')?.value ?? '';
  const response = await context.request.post(`${origin}/login`, { headers: { 'x-csrf-token': decodeURIComponent(csrf) } });
  if (!response.ok()) throw new Error(`POST ${origin}/login answered ${response.status()}: the Server block must keep its /login route.`);
}

describe('README pages, run against the Server block in Chromium', () => {
  let server: ReadmeServer;
  let browser: Browser;
  let pageServer: { close: () => Promise<void> } | undefined;
  let pageOrigin: string; // "https://app.example" of the API on another origin section
  let apiOrigin: string; // "https://api.example"
  beforeAll(async () => {
    browser = await launchChromium();
    const [apiPort, pagePort] = [await freePort(), await freePort()];
    pageOrigin = `http://127.0.0.1:${pagePort}`;
    apiOrigin = `http://127.0.0.1:${apiPort}`;
    // The Server block with the CORS lines of "API on another origin" before its routes.
    const cors = blocks.find((b) => b.attrs.name === 'cors');
    if (!cors) throw new Error('README\'s "API on another origin" section must show its CORS setup as ```js prelude=server name=cors');
    server = await startReadmeServer(blocks, apiPort, {
      insert: cors,
      replace: { 'https://api.example': apiOrigin, 'https://app.example': pageOrigin },
    });
    pageServer = await servePages(server.dir, pagePort, `${CSP}; connect-src 'self' ${apiOrigin}`);
  }, 120_000);
  afterAll(async () => {
    await pageServer?.close();
    await server?.stop();
    await browser?.close();
  });

  it('the Server block prints its URL when it starts', async () => {
    const url = `Listening on ${apiOrigin}/ (browsers address it as ${apiOrigin})`;
    await vi.waitFor(() => expect(server.output()).toContain(url), { timeout: 10_000 });
  });

  it('API on another origin: a page on another origin gets a token from the Server block and calls its API', async () => {
    const block = blocks.find((b) => b.attrs.file === 'public/other-origin.html');
    if (!block) throw new Error('README\'s "API on another origin" section must show its page as ```html file=public/other-origin.html');
    const context = await browser.newContext();
    try {
      await logIn(context, apiOrigin);
      const page = await context.newPage();
      const problems: string[] = [];
      const challenges = nonceChallenges(page, problems);
      page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
      page.on('response', (r) => {
        if (r.status() >= 400 && !challenges.is(r)) problems.push(`${r.status()} for ${r.request().method()} ${r.url()}`);
      });
      await page.goto(`${pageOrigin}/other-origin.html`);
      await page
        .waitForFunction(() => (document.querySelector('#me')?.textContent ?? '').includes('"jkt"'), null, { timeout: 20_000 })
        .catch(() => problems.push("it did not show the API's answer"));
      challenges.settle();
      if (problems.length)
        expect.fail(
          [
            `${where(block)}, served from ${pageOrigin} (its CSP: the demo's, connect-src ${apiOrigin}), the API (the Server block with the CORS block) on ${apiOrigin}:`,
            ...problems.map((p) => `  ${p}`),
            'How to fix: the CORS lines must allow and expose what the page sends and reads; the page must pass credentials and csrfToken. Server output:',
            server.output() || '(none)',
          ].join('\n'),
        );
    } finally {
      await context.close();
    }
  }, 60_000);

  it('the pages a reader runs first are in README', () => {
    const files = blocks.filter((b) => b.lang === 'html').map((b) => b.attrs.file);
    for (const [file, { section }] of Object.entries(RUN_FIRST))
      expect(files, `README's ${section} section must show its page as \`\`\`html file=${file} (run by this test)`).toContain(file);
  });

  it.each(blocks.filter((b) => b.lang === 'html' && b.attrs.exempt === undefined).map((b) => [label(b), b] as const))(
    '%s loads under the demo CSP without a violation or console error',
    async (_, block) => {
      const page$ = server.pages.find((p) => p.block === block);
      if (!page$) throw new Error(`${where(block)} was not saved under public/`);
      const context = await browser.newContext();
      try {
        await logIn(context, server.origin);
        const page = await context.newPage();
        // The reader's server sends no CSP of its own; the page gets the demo's, as README recommends.
        await page.route(`${server.origin}/**`, async (route) => {
          if (route.request().resourceType() !== 'document') return route.continue();
          const response = await route.fetch();
          await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': CSP } });
        });
        const problems: string[] = [];
        const challenges = nonceChallenges(page, problems);
        page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
        page.on('response', (r) => {
          if (r.status() >= 400 && !challenges.is(r)) problems.push(`${r.status()} for ${r.url()}`);
        });
        await page.goto(`${server.origin}${page$.path}`, { waitUntil: 'load' });
        const run = block.attrs.file ? RUN_FIRST[block.attrs.file] : undefined;
        let ran = '';
        if (run)
          ran = await run.check(page).then(
            () => '',
            (e: Error) => `it did not show the API's answer: ${e.message.split('\n')[0]}`,
          );
        await page.waitForLoadState('networkidle');
        challenges.settle();
        if (ran) problems.push(ran);
        if (problems.length)
          expect.fail(
            [
              `${where(block)}, served by the Server block at ${page$.path} under the demo's CSP (${CSP}):`,
              ...problems.map((p) => `  ${p}`),
              'How to fix: no inline script or style (scripts are files under public/, loaded with <script src>), no eval, every URL the page',
              "loads served by the Server block; the page's script must not throw or log errors. Server output:",
              server.output() || '(none)',
            ].join('\n'),
          );
      } finally {
        await context.close();
      }
    },
    60_000,
  );
});

/**
 * README's login and logout, as its Server block writes them (unchanged, no CORS lines), in
 * Chromium: the page logs in, and its very next request is the handshake; it logs out, logs in
 * again, and its next request is again the handshake. The page's script is this test's (README's
 * public/app.js runs a handshake on load, before any login).
 */
describe('README login and logout, run against the Server block in Chromium', () => {
  let server: ReadmeServer;
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
    server = await startReadmeServer(blocks, await freePort());
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await browser?.close();
  });

  it('login, then TokenSec.handshake() at once: a token; logout, login, handshake: a token; no other request in between', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.route(`${server.origin}/app.js`, (route) => route.fulfill({ contentType: 'text/javascript', body: '' }));
      await page.goto(`${server.origin}/`);
      const posts: string[] = [];
      page.on('request', (r) => {
        if (r.method() !== 'GET') posts.push(`${r.method()} ${new URL(r.url()).pathname}`);
      });
      const results = await page.evaluate(async () => {
        const { TokenSec } = window as unknown as { TokenSec: { handshake(o: { uri: string }): Promise<string> } };
        const csrfToken = () => decodeURIComponent(/(?:^|; )tokensec=([^;]*)/.exec(document.cookie)?.[1] ?? '');
        const post = async (path: string) => (await fetch(path, { method: 'POST', headers: { 'x-csrf-token': csrfToken() } })).status;
        const handshake = () =>
          TokenSec.handshake({ uri: '/token' }).then(
            (token) => (token.split('.').length === 3 ? 'a token' : token),
            (e: { code?: string; status?: number }) => `${e.code} ${e.status}`,
          );
        return [await post('/login'), await handshake(), await post('/logout'), await post('/login'), await handshake()];
      });
      expect(results, server.output()).toEqual([200, 'a token', 200, 200, 'a token']);
      // The handshake may retry itself (a fresh key for a new session: 409), always to /token; nothing else in between.
      expect(posts.filter((p) => p !== 'POST /token')).toEqual(['POST /login', 'POST /logout', 'POST /login']);
    } finally {
      await context.close();
    }
  }, 60_000);
});
