/**
 * The 3.0.0 browser bundles (test/fixtures/client-3.0.0, unchanged since 3.0.0) against the 3.1
 * server, in Chromium: every case where 3.0 was conformant is answered as 3.0 answered it
 * (docs/PROTOCOL.md, "Compatibility with 3.0 clients"): a session bound at login, no session to
 * bind, ES256 and EdDSA keys, migration mode, the body form, session.fetch on DPoP-protected API
 * routes, and a wrong secret refused as before. The 3.0 and the 3.1 clients' API-call proofs also
 * verify with jose. Server nonces (on by default since 4.0) are off here, as on a 3.x server: what a
 * cached client meets with them on is compat-3.1.test.ts's.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import express, { type ErrorRequestHandler, type Request } from 'express';
import session from 'express-session';
import { EmbeddedJWK, SignJWT, calculateJwkThumbprint, jwtVerify } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { launchChromium } from '../support/chromium.js';
import { listen } from '../support/helpers.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/client-3.0.0/${name}`, import.meta.url), 'utf8');
const signingKey = randomBytes(32);
const issue = (jkt: string | undefined, size = 0) =>
  new SignJWT({ sub: 'alice', ...(jkt ? { cnf: { jkt } } : {}), pad: 'p'.repeat(size) })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('5m')
    .sign(signingKey);
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;

let browser: Browser;
let origin: string;
let close: () => Promise<void>;
/** Sessions bound at login: session id → thumbprint (the application's own sessionKey hooks). */
const bindings = new Map<string, string>();
const apiProofs: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  const app = express();
  app.use(cookieParser());
  app.use(session({ secret: 'compat test session secret', resave: false, saveUninitialized: true }));
  app.use(csurf({ cookie: { sameSite: 'strict' } }));
  app.use(tokenSec.initialize({ cookie: true }));
  const page = (script: string) => `<!doctype html><title>3.0 client</title><script src="${script}"></script>`;
  app.get('/', (_req, res) => res.type('html').send(page('/tokensec-3.0.0.js')));
  app.get('/session', (_req, res) => res.type('html').send(page('/tokensec-session-3.0.0.js')));
  app.get('/current', (_req, res) => res.type('html').send(page('/tokensec.js')));
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.get('/tokensec-3.0.0.js', (_req, res) => res.type('js').send(fixture('tokensec.js')));
  app.get('/tokensec-session-3.0.0.js', (_req, res) => res.type('js').send(fixture('tokensec-session.js')));
  app.get('/tokensec.js', tokenSec.client());
  // Login-time binding as 3.0's README showed it: the page sends its key's thumbprint.
  app.post('/login', express.json(), (req: Request, res) => {
    bindings.set(req.sessionID, String((req.body as { jkt?: unknown }).jkt));
    res.json({ ok: true });
  });
  const sessionKey = {
    get: (req: Request) => bindings.get(req.sessionID),
    set: (req: Request, jkt: string) => void bindings.set(req.sessionID, jkt),
  };
  const payload = (_req: Request, _res: unknown, { jkt }: { jkt?: string | undefined }) => issue(jkt);
  app.post('/token-bound', tokenSec.handshake<Request>({ payload, terminate: true, dpop: { sessionKey, nonce: false } }));
  app.post(
    '/token',
    tokenSec.handshake<Request>({ payload, terminate: true, dpop: { sessionKey: false, algorithms: ['ES256', 'EdDSA'], nonce: false } }),
  );
  app.post(
    '/token-migrate',
    tokenSec.handshake<Request>({ payload, terminate: true, dpop: { required: false, sessionKey: false, nonce: false } }),
  );
  app.post(
    '/token-large',
    tokenSec.handshake<Request>({
      payload: (_req, _res, { jkt }) => issue(jkt, 4000),
      terminate: true,
      dpop: { sessionKey: false, nonce: false },
    }),
  );
  app.post(
    '/token-secret',
    tokenSec.handshake<Request>({ secret: 'a secret the page does not know', payload, terminate: true, dpop: { nonce: false } }),
  );
  app.all(
    '/api/me',
    (req, _res, next) => {
      apiProofs.push(String(req.headers.dpop));
      next();
    },
    tokenSec.dpop({ verifyToken, algorithms: ['ES256', 'EdDSA'], nonce: false }),
    (req, res) => res.json({ sub: (req as { tokenSec?: { claims: { sub?: unknown } } }).tokenSec?.claims.sub }),
  );
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
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

/** In the page: a handshake, then an API call with the token and a proof made by the same client. */
const handshakeAndCall = (page: Page, options: Record<string, unknown>, keyOptions: Record<string, unknown> = {}) =>
  page.evaluate(
    async ({ options, keyOptions }) => {
      const T = (window as any).TokenSec;
      try {
        const key = await T.getDpopKey(keyOptions);
        const token = await T.handshake(options);
        const proof = await T.createDpopProof({ method: 'GET', url: '/api/me', accessToken: token });
        const response = await fetch('/api/me', { headers: { authorization: `DPoP ${token}`, dpop: proof } });
        return { thumbprint: key.thumbprint, algorithm: key.algorithm, token, proof, status: response.status, body: await response.json() };
      } catch (error) {
        return { error: (error as { code?: string }).code, status: (error as { status?: number }).status };
      }
    },
    { options, keyOptions },
  );

const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { cnf?: { jkt?: string } };

describe('the 3.0.0 client against the 3.1 server', () => {
  it('a session bound at login (3.0 README: the page sends getDpopKey().thumbprint): handshake and API call', async () => {
    const page = await open('/');
    const bound = await page.evaluate(async () => {
      const { thumbprint } = await (window as any).TokenSec.getDpopKey();
      const csrf = decodeURIComponent(/(?:^|; )tokensec=([^;]*)/.exec(document.cookie)?.[1] ?? '');
      const response = await fetch('/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
        body: JSON.stringify({ jkt: thumbprint }),
      });
      return { thumbprint, status: response.status };
    });
    expect(bound.status).toBe(200);
    const result = await handshakeAndCall(page, { uri: '/token-bound' });
    expect(result).toMatchObject({ thumbprint: bound.thumbprint, status: 200, body: { sub: 'alice' } });
    expect(claimsOf(String(result.token)).cnf?.jkt).toBe(bound.thumbprint);
    // Another page's key on that session: refused as 3.0 refused it (403, reported as an HTTP status).
    const other = await open('/');
    const cookies = await page.context().cookies();
    await other.context().addCookies(cookies);
    await other.reload();
    expect(await handshakeAndCall(other, { uri: '/token-bound' })).toEqual({ error: 'ERR_TOKENSEC_HTTP_STATUS', status: 403 });
  });

  it.each(['ES256', 'EdDSA'])('no session to bind, %s key: the token is bound to the key and the API call passes', async (algorithm) => {
    const page = await open('/');
    const result = await handshakeAndCall(page, { uri: '/token' }, { algorithm });
    expect(result).toMatchObject({ algorithm, status: 200, body: { sub: 'alice' } });
    expect(claimsOf(String(result.token)).cnf?.jkt).toBe(result.thumbprint);
  });

  it('migration mode (dpop: false on the client, required: false on the server), and the body form of a large answer', async () => {
    const page = await open('/');
    const token = await page.evaluate(() => (window as any).TokenSec.handshake({ uri: '/token-migrate', dpop: false }));
    expect(claimsOf(token).cnf).toBeUndefined();
    const large = await handshakeAndCall(page, { uri: '/token-large' });
    expect(String(large.token).length).toBeGreaterThan(3072);
    expect(large).toMatchObject({ status: 200, body: { sub: 'alice' } });
  });

  it('a wrong secret is refused as 3.0 refused it: ERR_TOKENSEC_HTTP_STATUS with status 403', async () => {
    const page = await open('/');
    expect(await handshakeAndCall(page, { uri: '/token-secret' })).toEqual({ error: 'ERR_TOKENSEC_HTTP_STATUS', status: 403 });
  });

  it('the 3.0 session bundle: session.fetch on a DPoP-protected route', async () => {
    const page = await open('/session');
    const result = await page.evaluate(async () => {
      const session = (window as any).TokenSec.session({ uri: '/token' });
      const response = await session.fetch('/api/me');
      return { status: response.status, body: await response.json() };
    });
    expect(result).toEqual({ status: 200, body: { sub: 'alice' } });
  });
});

describe('the IndexedDB record (docs/PROTOCOL.md, "The key store")', () => {
  it('is { algorithm, pair } under "dpop" in store "keys" of database "tokensec" v1, as 3.0 wrote it; the 3.1 client takes over a 3.0 key', async () => {
    const page = await open('/');
    const made = await page.evaluate(async () => (await (window as any).TokenSec.getDpopKey()).thumbprint);
    const record = await page.evaluate(
      () =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          const request = indexedDB.open('tokensec');
          request.onerror = () => reject(request.error);
          request.onsuccess = () => {
            const db = request.result;
            const store = db.transaction('keys').objectStore('keys');
            const get = store.get('dpop');
            get.onsuccess = () => {
              const { pair, ...rest } = get.result as { pair: CryptoKeyPair };
              resolve({
                version: db.version,
                keyPath: store.keyPath,
                members: Object.keys(get.result as object).sort(),
                ...rest,
                privateKey: [String(pair.privateKey), pair.privateKey.algorithm, pair.privateKey.extractable, pair.privateKey.usages],
                publicKey: [String(pair.publicKey), pair.publicKey.type],
              });
            };
          };
        }),
    );
    expect(record).toEqual({
      version: 1,
      keyPath: null,
      members: ['algorithm', 'pair'],
      algorithm: 'ES256',
      privateKey: ['[object CryptoKey]', { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']],
      publicKey: ['[object CryptoKey]', 'public'],
    });
    await page.goto(`${origin}/current`);
    expect(await page.evaluate(async () => (await (window as any).TokenSec.getDpopKey()).thumbprint)).toBe(made);
  });
});

describe('API-call proofs made in Chromium verify with jose', () => {
  it.each([
    ['3.0.0', '/'],
    ['3.1', '/current'],
  ])('the %s client', async (_, path) => {
    const page = await open(path);
    const result = await handshakeAndCall(page, { uri: '/token' });
    expect(result.status).toBe(200);
    const proof = String(result.proof);
    expect(apiProofs).toContain(proof);
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] });
    expect(await calculateJwkThumbprint(protectedHeader.jwk ?? {})).toBe(result.thumbprint);
    expect(payload).toMatchObject({ htm: 'GET', htu: `${origin}/api/me` });
    expect(payload.ath).toBe(
      Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(String(result.token)))).toString('base64url'),
    );
  });
});
