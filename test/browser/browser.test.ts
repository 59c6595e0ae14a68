/** Real browsers (Chromium, Firefox, WebKit) load the client by script tag from an app protected by csurf. */
import type { Express } from 'express';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../support/chromium.js';
import { engines, launch, type EngineBrowser } from '../support/engines.js';
import tokenSec from '../../src/index.js';
import { CSRF_REFUSED_MESSAGE, PUBLIC_MESSAGES } from '../../src/server/error-handler.js';
import { TOKEN, csrfApp, listen } from '../support/helpers.js';

const page = (options: string) => `<!doctype html>
<title>TokenSec</title>
<script src="/tokensec.js"></script>
<script>
  window.result = TokenSec.handshake(${options}).then(
    (payload) => ({ payload, algorithm: null }),
    (error) => ({ name: error.name, code: error.code, status: error.status, message: error.message }),
  );
</script>`;

describe.each(engines)('%s', (engine) => {
  let browser: EngineBrowser;
  beforeAll(async () => {
    browser = await launch(engine);
  });
  afterAll(() => browser?.close());

  async function run(options: string, handshakeOptions = {}, errorHandler = false) {
    const withErrorHandler = (a: Express) => a.use(tokenSec.errorHandler({ log: false }));
    const { app, errors } = csrfApp(handshakeOptions, page(options), errorHandler ? withErrorHandler : undefined);
    const server = await listen(app);
    const context = await browser.newContext();
    try {
      const tab = await context.newPage();
      await tab.goto(`${server.origin}/`);
      const result = await tab.evaluate(() => (window as unknown as { result: Promise<unknown> }).result);
      const cookies = await context.cookies();
      return { result, errors, cookies };
    } finally {
      await context.close();
      await server.close();
    }
  }

  it('script tag + csurf: TokenSec.handshake() reads the tokensec cookie and gets the exact payload', async () => {
    const { result, errors, cookies } = await run(`{ uri: '/token' }`);
    expect(result).toEqual({ payload: TOKEN, algorithm: null });
    // The page's first proof carries no server nonce yet (4.0 default): one 401 use_dpop_nonce, then the answer.
    expect(errors.map((e) => e.code)).toEqual(['ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
    expect(cookies.map((c) => c.name).sort()).toEqual(['_csrf', 'tokensec']);
  });

  it.each(['x25519', 'p256'])('%s key agreement in the browser', async (algorithm) => {
    const { result } = await run(`{ uri: '/token', algorithm: '${algorithm}' }`);
    expect(result).toEqual({ payload: TOKEN, algorithm: null });
  });

  it('a CSRF token that csurf refuses gives ERR_TOKENSEC_CSRF_REFUSED 403, with the message the server wrote', async () => {
    const { result, errors } = await run(`{ uri: '/token', csrfToken: 'forged' }`);
    expect(result).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_CSRF_REFUSED', status: 403, message: 'invalid csrf token' });
    expect(errors.map((e) => e.code)).toEqual(['EBADCSRFTOKEN']);
  });

  it("behind errorHandler(): a refused CSRF token says what to do, and a 5xx carries the server's one-line fix", async () => {
    const { result } = await run(`{ uri: '/token', csrfToken: 'forged' }`, {}, true);
    expect(result).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_CSRF_REFUSED', status: 403, message: CSRF_REFUSED_MESSAGE });
    const failed = await run(`{ uri: '/token' }`, { payload: () => Promise.reject(new Error('PLANTED detail')) }, true);
    expect(failed.result).toEqual({
      name: 'TokenSecError',
      code: 'ERR_TOKENSEC_PAYLOAD_FAILED',
      status: 500,
      message: PUBLIC_MESSAGES.ERR_TOKENSEC_PAYLOAD_FAILED,
    });
  });

  it('a handshake to an origin that does not allow this one (no CORS) rejects with ERR_TOKENSEC_NETWORK naming CORS', async () => {
    const other = await listen(csrfApp().app); // answers, but sends no Access-Control-Allow-Origin
    try {
      const { result } = await run(`{ uri: '${other.origin.replace('127.0.0.1', 'localhost')}/token', secret: 's-0123456789abcdef' }`);
      expect(result).toEqual({
        name: 'TokenSecError',
        code: 'ERR_TOKENSEC_NETWORK',
        status: undefined,
        message: 'Network error or CORS (the server must allow this origin)',
      });
    } finally {
      await other.close();
    }
  });
});

// Chromium-only: it maps a name to 127.0.0.1 with Chromium's --host-resolver-rules.
describe('Chromium', () => {
  it('insecure context: a plain-http, non-loopback origin rejects with ERR_TOKENSEC_INSECURE_CONTEXT saying what to do', async () => {
    const insecure: Browser = await launchChromium(['--host-resolver-rules=MAP tokensec.test 127.0.0.1']);
    const { app } = csrfApp({}, page(`{ uri: '/token' }`));
    const server = await listen(app);
    try {
      const tab = await insecure.newPage();
      await tab.goto(server.origin.replace('127.0.0.1', 'tokensec.test') + '/');
      expect(await tab.evaluate(() => window.isSecureContext)).toBe(false);
      const result = await tab.evaluate(() => (window as unknown as { result: Promise<unknown> }).result);
      expect(result).toMatchObject({ name: 'TokenSecError', code: 'ERR_TOKENSEC_INSECURE_CONTEXT' });
      expect((result as { message: string }).message).toMatch(/HTTPS or localhost/);
    } finally {
      await insecure.close();
      await server.close();
    }
  });
});
