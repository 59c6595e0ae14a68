/**
 * A page that still runs a cached 3.1.0 client (test/fixtures/client-3.1.0) against the 4.0 server,
 * whose server nonces are on by default, in Chromium (docs/UPGRADING.md): the handshake and
 * session.fetch work, each after one use_dpop_nonce retry; an API call the page signs itself with
 * createDpopProof carries no nonce and is refused with a clear 401 ERR_TOKENSEC_DPOP_NONCE_REQUIRED
 * (`WWW-Authenticate: DPoP error="use_dpop_nonce"`). The 4.0 client in the same place passes at once.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import express, { type ErrorRequestHandler, type Request } from 'express';
import { SignJWT, jwtVerify } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { launchChromium } from '../support/chromium.js';
import { listen } from '../support/helpers.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/client-3.1.0/${name}`, import.meta.url), 'utf8');
const SECRET = 'compat-3.1-secret-0123456789';
const signingKey = randomBytes(32);
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;

let browser: Browser;
let origin: string;
let close: () => Promise<void>;
/** The TokenSec code of each refusal, in order. */
const refusals: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  const app = express();
  const page = (script: string) => `<!doctype html><title>cached client</title><script src="${script}"></script>`;
  app.get('/', (_req, res) => res.type('html').send(page('/tokensec-3.1.0.js')));
  app.get('/session', (_req, res) => res.type('html').send(page('/tokensec-session-3.1.0.js')));
  app.get('/current', (_req, res) => res.type('html').send(page('/tokensec.js')));
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.get('/tokensec-3.1.0.js', (_req, res) => res.type('js').send(fixture('tokensec.js')));
  app.get('/tokensec-session-3.1.0.js', (_req, res) => res.type('js').send(fixture('tokensec-session.js')));
  app.get('/tokensec.js', tokenSec.client());
  // The 4.0 defaults: nonces on, on the handshake and the API.
  app.post(
    '/token',
    tokenSec.handshake<Request>({
      secret: SECRET,
      terminate: true,
      dpop: { sessionKey: false },
      payload: (_req, _res, { jkt }) =>
        new SignJWT({ sub: 'alice', cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey),
    }),
  );
  app.get('/api/me', tokenSec.dpop({ verifyToken }), (_req, res) => res.json({ sub: 'alice' }));
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    refusals.push(err.code);
    res.set(err.headers ?? {});
    res.status(err.status ?? 500).json({ code: err.code });
  };
  app.use(onError);
  const server = await listen(app);
  origin = server.origin;
  close = server.close;
});
afterAll(async () => {
  await close?.();
  await browser?.close();
});

async function open(path: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}${path}`);
  return page;
}

/** In the page: a handshake, then an API call signed by the page itself with createDpopProof. */
const handshakeAndCall = (page: Page) =>
  page.evaluate(async (secret) => {
    const T = (window as any).TokenSec;
    try {
      const token = await T.handshake({ uri: '/token', secret });
      const proof = await T.createDpopProof({ method: 'GET', url: '/api/me', accessToken: token });
      const response = await fetch('/api/me', { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      return { status: response.status, body: await response.json(), challenge: response.headers.get('www-authenticate') };
    } catch (error) {
      return { error: (error as { code?: string }).code };
    }
  }, SECRET);

describe('a cached 3.1.0 client against the 4.0 server (nonces on by default)', () => {
  it('the handshake works after one use_dpop_nonce retry; an API call the page signs itself is refused with NONCE_REQUIRED', async () => {
    const page = await open('/');
    const before = refusals.length;
    const result = await handshakeAndCall(page);
    expect(result).toMatchObject({ status: 401, body: { code: 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED' } });
    expect(result.challenge).toMatch(/^DPoP error="use_dpop_nonce"/);
    // The handshake's own challenge, answered by the 3.1 client's retry; then the API call's.
    expect(refusals.slice(before)).toEqual(['ERR_TOKENSEC_DPOP_NONCE_REQUIRED', 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
  });

  it('the 3.1 session bundle: session.fetch works after one use_dpop_nonce retry', async () => {
    const page = await open('/session');
    const result = await page.evaluate(async (secret) => {
      const session = (window as any).TokenSec.session({ uri: '/token', secret });
      const first = await session.fetch('/api/me');
      const second = await session.fetch('/api/me');
      return [first.status, await first.json(), second.status];
    }, SECRET);
    expect(result).toEqual([200, { sub: 'alice' }, 200]);
  });

  it('the 4.0 client on the same server: the API call it signs carries the nonce of the handshake answer, accepted at once', async () => {
    const page = await open('/current');
    const before = refusals.length;
    expect(await handshakeAndCall(page)).toMatchObject({ status: 200, body: { sub: 'alice' } });
    // Only the first contact's challenge, on the handshake.
    expect(refusals.slice(before)).toEqual(['ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
  });
});
