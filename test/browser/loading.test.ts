/**
 * Every supported way of loading the browser client, in each engine (Chromium, Firefox, WebKit), under a strict CSP
 * (script-src 'self': no inline script, no eval), plus the P-256 fallback and cross-origin use.
 */
import { fileURLToPath } from 'node:url';
import cors from 'cors';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { engines, launch, type EngineBrowser } from '../support/engines.js';
import { TOKEN, listen } from '../support/helpers.js';

const fixtures = fileURLToPath(new URL('./fixtures/loading/', import.meta.url));
const requirejsFile = fileURLToPath(new URL('../../node_modules/requirejs/require.js', import.meta.url));
const distBrowser = new URL('../../dist/browser/', import.meta.url);
const esmBuild = fileURLToPath(new URL('tokensec.min.mjs', distBrowser));

type Script = string | { src: string; type?: string; data?: Record<string, string> };

/** The handshake headers the pages' requests carried, read on the server (WebDriver cannot see requests). */
const handshakeHeaders: string[] = [];

/** A page that loads only external scripts, with a strict Content Security Policy. */
function pageApp(pages: Record<string, Script[]>, connect = "'self'") {
  const app = express();
  app.use((req, _res, next) => {
    const value = req.headers['x-tokensec-handshake'];
    if (typeof value === 'string') handshakeHeaders.push(value);
    next();
  });
  app.use((_req, res, next) => {
    res.setHeader(
      'Content-Security-Policy',
      `default-src 'self'; script-src 'self'; connect-src ${connect}; object-src 'none'; base-uri 'none'`,
    );
    next();
  });
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.get('/tokensec.js', tokenSec.client());
  app.get('/tokensec.mjs', (_req, res) => res.type('text/javascript').sendFile(esmBuild));
  app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));
  app.get('/tokensec-sealed.js', tokenSec.client({ bundle: 'sealed' }));
  for (const name of ['tokensec-session', 'tokensec-sealed'])
    app.get(`/${name}.mjs`, (_req, res) => res.type('text/javascript').sendFile(fileURLToPath(new URL(`${name}.min.mjs`, distBrowser))));
  // What a sealed session's API call carried: the scheme of its Authorization header and a proof.
  app.get('/whoami', (req, res) =>
    res.type('text').send(`${req.headers.authorization?.split(' ')[0]} ${req.headers.dpop ? 'proof' : 'no proof'}`),
  );
  app.get('/require.js', (_req, res) => res.type('text/javascript').sendFile(requirejsFile));
  app.use('/fixtures', express.static(fixtures));
  for (const [path, scripts] of Object.entries(pages)) {
    app.get(path, (_req, res) => {
      const tags = [{ src: '/fixtures/report.js' }, ...scripts].map((s) => {
        const { src, type, data = {} } = typeof s === 'string' ? { src: s } : s;
        const attrs = Object.entries(data)
          .map(([k, v]) => ` data-${k}="${v}"`)
          .join('');
        return `<script src="${src}"${type ? ` type="${type}"` : ''}${attrs}></script>`;
      });
      // '/inline-control' adds the one thing the policy forbids, to prove violations are seen.
      const inline = path === '/inline-control' ? '<script>window.inlineRan = true</script>' : '';
      res.type('html').send(`<!doctype html><title>loading</title>${tags.join('')}${inline}`);
    });
  }
  app.post('/token', tokenSec.handshake({ payload: TOKEN, secret: 's-0123456789abcdef', terminate: true, dpop: { nonce: false } }));
  return app;
}

describe.each(engines)('loading the client in %s', (engine) => {
  let browser: EngineBrowser;
  let server: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    browser = await launch(engine);
    server = await listen(
      pageApp({
        '/script': ['/tokensec.js', '/fixtures/run-global.js'],
        '/script-with-requirejs': ['/require.js', '/tokensec.js', '/fixtures/run-global.js'],
        '/requirejs-tokensec': ['/require.js', { src: '/fixtures/run-amd.js', data: { id: 'tokensec' } }],
        '/requirejs-TokenSec': ['/require.js', { src: '/fixtures/run-amd.js', data: { id: 'TokenSec' } }],
        '/esm': [{ src: '/fixtures/run-esm.js', type: 'module' }],
        '/fallback': ['/tokensec.js', '/fixtures/run-fallback.js'],
        '/inline-control': ['/tokensec.js', '/fixtures/run-global.js'],
        '/session-script': ['/fixtures/session-runner.js', '/tokensec-session.js', '/fixtures/run-session-global.js'],
        '/session-requirejs': [
          '/fixtures/session-runner.js',
          '/require.js',
          { src: '/fixtures/run-amd.js', data: { id: 'tokensec/session', path: '/tokensec-session' } },
        ],
        '/session-esm': [
          '/fixtures/session-runner.js',
          { src: '/fixtures/run-session-esm.js', type: 'module', data: { bundle: 'tokensec-session' } },
        ],
        '/sealed-script': ['/fixtures/session-runner.js', '/tokensec-sealed.js', '/fixtures/run-session-global.js'],
        '/sealed-requirejs': [
          '/fixtures/session-runner.js',
          '/require.js',
          { src: '/fixtures/run-amd.js', data: { id: 'tokensec-sealed', path: '/tokensec-sealed' } },
        ],
        '/sealed-esm': [
          '/fixtures/session-runner.js',
          { src: '/fixtures/run-session-esm.js', type: 'module', data: { bundle: 'tokensec-sealed' } },
        ],
      }),
    );
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function run(path: string, origin = server.origin) {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    const seenBefore = handshakeHeaders.length;
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    try {
      await page.goto(`${origin}${path}`);
      await page.waitForFunction(() => 'result' in window, null, { timeout: 10_000 });
      const result = await page.evaluate(() => (window as unknown as { result: Promise<unknown> }).result);
      const problems = await page.evaluate(() => (window as unknown as { problems: string[] }).problems);
      const extra = await page.evaluate(() => {
        const w = window as unknown as Record<string, unknown>;
        return { global: typeof w.TokenSec, amdModule: w.amdModule, esmGlobal: w.esmGlobal };
      });
      return { result, problems: [...problems, ...pageErrors], handshakeHeaders: handshakeHeaders.slice(seenBefore), extra };
    } finally {
      await page.close();
    }
  }

  it('script tag alone: window.TokenSec', async () => {
    const { result, problems, extra } = await run('/script');
    expect(result).toEqual({ payload: TOKEN });
    expect(extra.global).toBe('object');
    expect(problems).toEqual([]);
  });

  it('script tag on a page that also loads RequireJS: window.TokenSec still set, no RequireJS error', async () => {
    const { result, problems, extra } = await run('/script-with-requirejs');
    expect(result).toEqual({ payload: TOKEN });
    expect(extra.global).toBe('object');
    expect(problems).toEqual([]);
  });

  it.each(['tokensec', 'TokenSec'])("RequireJS require(['%s'])", async (id) => {
    const { result, problems, extra } = await run(`/requirejs-${id}`);
    expect(result).toEqual({ payload: TOKEN });
    expect(extra.amdModule).toBe('function');
    expect(problems).toEqual([]);
  });

  it('ESM import from the ESM build, without a global', async () => {
    const { result, problems, extra } = await run('/esm');
    expect(result).toEqual({ payload: TOKEN });
    expect(extra.esmGlobal).toBe('undefined');
    expect(problems).toEqual([]);
  });

  it.each(['script', 'requirejs', 'esm'])('the session bundle, by %s: session().getToken()', async (how) => {
    const { result, problems, extra } = await run(`/session-${how}`);
    expect(result).toEqual({ payload: TOKEN });
    if (how === 'esm') expect(extra.esmGlobal).toBe('undefined');
    expect(problems).toEqual([]);
  });

  it.each(['script', 'requirejs', 'esm'])(
    'the sealed bundle, by %s: its worker starts under the CSP and signs the API call',
    async (how) => {
      const { result, problems } = await run(`/sealed-${how}`);
      expect(result).toEqual({ payload: 'DPoP proof' });
      expect(problems).toEqual([]);
    },
  );

  it('a browser without X25519 falls back to P-256', async () => {
    const { result, handshakeHeaders, problems } = await run('/fallback');
    expect(result).toEqual({ payload: TOKEN });
    expect(handshakeHeaders).toHaveLength(1);
    expect(handshakeHeaders[0]).toMatch(/^v3\.p256\./);
    expect(problems).toEqual([]);
  });

  it('control: the strict CSP is enforced and its violations are seen (an inline script is blocked)', async () => {
    const { result, problems } = await run('/inline-control');
    expect(result).toEqual({ payload: TOKEN });
    expect(problems).toContainEqual(expect.stringMatching(/^CSP script-src/));
    // Firefox also reports the blocked inline script as a page error of its own; nothing else is reported.
    expect(problems.filter((p) => !/^CSP script-src|^Content-Security-Policy: .*inline script/.test(p))).toEqual([]);
  });

  it('the default is X25519', async () => {
    const { handshakeHeaders } = await run('/script');
    expect(handshakeHeaders[0]).toMatch(/^v3\.x25519\./);
  });

  describe('cross-origin: page on 127.0.0.1, API on localhost', () => {
    async function crossOrigin(apiSetup: (app: express.Express, pageOrigin: string) => void) {
      // Start the API first so the page's CSP can name it.
      const api = express();
      const apiServer = await listen(api);
      const apiOrigin = apiServer.origin.replace('127.0.0.1', 'localhost');
      const page = await listen(
        pageApp({ '/cross': ['/tokensec.js', { src: '/fixtures/run-cross.js', data: { api: apiOrigin } }] }, `'self' ${apiOrigin}`),
      );
      apiSetup(api, page.origin);
      api.post('/token', tokenSec.handshake({ payload: TOKEN, secret: 's-0123456789abcdef', terminate: true, dpop: { nonce: false } }));
      try {
        return await run('/cross', page.origin);
      } finally {
        await page.close();
        await apiServer.close();
      }
    }

    it('with CORS that exposes the handshake header (the one-line setup in the README): works', async () => {
      const { result, problems } = await crossOrigin((app, origin) =>
        app.use(cors({ origin, credentials: true, exposedHeaders: ['x-tokensec-handshake'] })),
      );
      expect(result).toEqual({ payload: TOKEN });
      expect(problems).toEqual([]);
    });

    it('with CORS that does not expose it: a clear ERR_TOKENSEC_NO_RESPONSE_HEADER, not a hang', async () => {
      const { result } = await crossOrigin((app, origin) => app.use(cors({ origin, credentials: true })));
      expect(result).toMatchObject({
        code: 'ERR_TOKENSEC_NO_RESPONSE_HEADER',
        message: expect.stringContaining('Access-Control-Expose-Headers'),
      });
    });

    it('without CORS at all: ERR_TOKENSEC_NETWORK', async () => {
      const { result } = await crossOrigin(() => {});
      expect(result).toMatchObject({ code: 'ERR_TOKENSEC_NETWORK' });
    });
  });
});
