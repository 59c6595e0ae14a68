/**
 * Key integrity in each engine (Chromium, Firefox, WebKit; issue 20): any script of the origin can write the client's IndexedDB
 * record, so a key pair planted there by a script that ran once (an XSS on the login page) must
 * never become bound to a session. The attacker here imports a private key it knows as
 * non-extractable and stores it where the client keeps its key. Also here: two tabs binding at
 * once, a browser clock ten minutes off, a server nonce on the handshake, the server's error code
 * in the page, and stored records that are not usable key pairs.
 */
import { SignJWT, calculateJwkThumbprint, exportJWK, jwtVerify } from 'jose';
import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import session from 'express-session';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec, { TokenSecError } from '../../src/index.js';
import { engines, launch, type EngineBrowser, type EngineContext, type EnginePage as Page } from '../support/engines.js';
import { listen } from '../support/helpers.js';
import { joseProof, proofKey, sha256, type ProofKey } from '../support/proofs.js';

const signingKey = new TextEncoder().encode('key-integrity test HMAC key, 32b');
let browser: EngineBrowser;
let origin: string;
let close: () => Promise<void>;
/** The jkt of every token the server issued (the key the session was bound to), in order. */
const bound: string[] = [];
/** The code of every error the server answered, in order. */
const refusals: string[] = [];
/** When set, each login waits on it before answering (the tab's name is its `x-tab` header): how a test orders two logins. */
let holdLogin: ((tab: string) => Promise<void>) | undefined;

/** The page: the session bundle and small helpers a test calls through page.evaluate. */
const PAGE = `<!doctype html><title>key integrity</title><script src="/tokensec-session.js"></script><script>
const csrf = () => decodeURIComponent((document.cookie.match(/(?:^|; )tokensec=([^;]*)/) || [])[1] || '');
window.login = (jkt) => fetch('/login', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf() }, body: JSON.stringify({ jkt }) }).then((r) => r.status);
window.outcome = (promise) => promise.then((value) => ({ value }), (e) => ({ name: e.name, code: e.code, status: e.status }));
window.api = async (token) => (await fetch('/api/me', { headers: { authorization: 'DPoP ' + token, dpop: await TokenSec.createDpopProof({ method: 'GET', url: '/api/me', accessToken: token }) } })).status;
</script>`;

beforeAll(async () => {
  const app = express();
  app.use(express.json());
  app.use(cookieParser());
  app.use(session({ secret: 'key-integrity session secret', resave: false, saveUninitialized: true }));
  app.use(csurf({ cookie: { sameSite: 'strict' } }));
  app.use(tokenSec.initialize({ cookie: true }));
  app.get('/', (_req, res) => {
    res.type('html').send(PAGE);
  });
  app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));
  // Login regenerates the session (no fixation, nothing bound); `jkt` binds it at login.
  app.post('/login', (req, res, next) =>
    req.session.regenerate(async (err) => {
      if (err) return next(err);
      const s = req.session as unknown as { user: string; tokenSecJkt?: string };
      s.user = 'alice';
      if (req.body?.jkt) s.tokenSecJkt = String(req.body.jkt);
      await holdLogin?.(req.get('x-tab') ?? '');
      res.json({ ok: true });
    }),
  );
  const requireUser: RequestHandler = (req, res, next) => {
    if ((req.session as unknown as { user?: string }).user) next();
    else res.status(401).json({ code: 'NOT_LOGGED_IN', message: 'Log in first.' });
  };
  const payload = (req: express.Request, _res: unknown, { jkt }: { jkt?: string | undefined }) => {
    bound.push(String(jkt));
    const sub = (req.session as unknown as { user: string }).user;
    return new SignJWT({ sub, cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey);
  };
  // Nonces off on /token and the API: these tests count the key refusals and retries; the nonce
  // round trip is /token-nonce's (and test/unit/client/retries.test.ts's).
  app.post('/token', requireUser, tokenSec.handshake({ payload, terminate: true, dpop: { maxAge: 60, nonce: false } }));
  app.post('/token-nonce', requireUser, tokenSec.handshake({ payload, terminate: true, dpop: { maxAge: 60, nonce: true } }));
  app.post('/token-large', requireUser, tokenSec.handshake({ payload: () => 'x'.repeat(7000), terminate: true, dpop: { nonce: false } }));
  app.get(
    '/api/me',
    tokenSec.dpop({ maxAge: 60, nonce: false, verifyToken: async (token) => (await jwtVerify(token, signingKey)).payload }),
    (req, res) => {
      res.json({ sub: (req as unknown as { tokenSec: { claims: { sub: string } } }).tokenSec.claims.sub });
    },
  );
  // As errorHandler() answers: the code in TokenSec-Error and in the JSON body, the error's headers.
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    refusals.push(String(err.code));
    if (err instanceof TokenSecError) res.set('TokenSec-Error', err.code);
    res
      .set(err.headers ?? {})
      .status(err.status ?? 500)
      .json({ code: err.code });
  };
  app.use(onError);
  const server = await listen(app);
  origin = server.origin;
  close = server.close;
});
afterAll(async () => {
  await close?.();
});

/** Each describe.each block starts its engine's browser for its tests. */
function useEngine(engine: (typeof engines)[number]) {
  beforeAll(async () => {
    browser = await launch(engine);
  });
  afterAll(() => browser?.close());
}

async function freshPage(context?: EngineContext): Promise<{ context: EngineContext; page: Page }> {
  const ctx = context ?? (await browser.newContext());
  const page = await ctx.newPage();
  await page.goto(`${origin}/`);
  return { context: ctx, page };
}

/** An attacker's ES256 key pair (jose, in Node), with the private JWK it will plant. */
async function attackerKey(): Promise<{ key: ProofKey; privateJwk: Record<string, unknown>; jkt: string }> {
  const key = await proofKey('ES256');
  const { kty, crv, x, y, d } = await exportJWK(key.privateKey);
  return { key, privateJwk: { kty, crv, x, y, d }, jkt: await calculateJwkThumbprint(key.jwk) };
}

/**
 * What a script that runs once in the page can do: import a private key it knows as
 * non-extractable and store it, with its public key, as the client's key record.
 */
async function plant(page: Page, record: string, privateJwk?: Record<string, unknown>): Promise<void> {
  await page.evaluate(
    async ([kind, jwk]) => {
      const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' };
      const make = async (): Promise<unknown> => {
        if (kind === 'garbage') return { algorithm: 'ES256', pair: { privateKey: 'k', publicKey: 'p' } };
        const own = (await crypto.subtle.generateKey(ecdsa, kind === 'extractable', ['sign', 'verify'])) as CryptoKeyPair;
        if (kind === 'extractable') return { algorithm: 'ES256', pair: own };
        if (kind === 'wrong-algorithm') return { algorithm: 'EdDSA', pair: own };
        const other = (await crypto.subtle.generateKey(ecdsa, false, ['sign', 'verify'])) as CryptoKeyPair;
        if (kind === 'mismatched') return { algorithm: 'ES256', pair: { privateKey: own.privateKey, publicKey: other.publicKey } };
        // 'known': the attacker's own private key, imported non-extractable.
        const { d: _d, ...pub } = jwk as JsonWebKey;
        const privateKey = await crypto.subtle.importKey('jwk', jwk as JsonWebKey, ecdsa, false, ['sign']);
        const publicKey = await crypto.subtle.importKey('jwk', pub, ecdsa, true, ['verify']);
        return { algorithm: 'ES256', pair: { privateKey, publicKey } };
      };
      const value = await make();
      await new Promise<void>((resolve, reject) => {
        const open = indexedDB.open('tokensec', 1);
        open.onupgradeneeded = () => open.result.createObjectStore('keys');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const transaction = open.result.transaction('keys', 'readwrite');
          transaction.objectStore('keys').put(value, 'dpop');
          transaction.oncomplete = () => resolve(open.result.close());
          transaction.onerror = () => reject(transaction.error);
        };
      });
    },
    [record, privateJwk] as const,
  );
}

const thumbprint = (page: Page) => page.evaluate(async () => (await (window as any).TokenSec.getDpopKey()).thumbprint as string);
const handshake = (page: Page, uri = '/token') =>
  page.evaluate((u) => (window as any).outcome((window as any).TokenSec.handshake({ uri: u })), uri) as Promise<{
    value?: string;
    code?: string;
    status?: number;
  }>;
const login = (page: Page, jkt?: string) => page.evaluate((k) => (window as any).login(k) as Promise<number>, jkt);
const api = (page: Page, token: string) => page.evaluate((t) => (window as any).api(t) as Promise<number>, token);
const jktOf = async (token: string) => ((await jwtVerify(token, signingKey)).payload.cnf as { jkt: string }).jkt;

/**
 * Runs `fn` in every tab at one signal: each tab first waits on a BroadcastChannel, then one
 * message starts them all. (WebKit's WebDriver runs one command at a time, so calls made from
 * here would run one after another; the channel starts them together in every engine.)
 */
async function atOnce(tabs: Page[], fn: () => unknown): Promise<unknown[]> {
  const source = fn.toString();
  await Promise.all(
    tabs.map((tab) =>
      tab.evaluate((src) => {
        const w = window as any;
        w.started = new Promise<void>((resolve) => {
          const channel = new BroadcastChannel('key-integrity-test-go');
          channel.onmessage = () => {
            channel.close();
            resolve();
          };
        }).then(() => (0, eval)(`(${src})`)());
        w.started.catch(() => undefined); // read below
      }, source),
    ),
  );
  await tabs[0]!.evaluate(() => new BroadcastChannel('key-integrity-test-go').postMessage('go'));
  return Promise.all(tabs.map((tab) => tab.evaluate(() => (window as any).started)));
}

/** The attacker, from its own machine: the copied token with a proof of its planted key. */
async function attackerCall(attacker: ProofKey, token: string) {
  const url = `${origin}/api/me`;
  const res = await fetch(url, {
    headers: { authorization: `DPoP ${token}`, dpop: await joseProof(attacker, { htm: 'GET', htu: url, ath: await sha256(token) }) },
  });
  return { status: res.status, code: ((await res.json()) as { code?: string }).code };
}

describe.each(engines)('key integrity in %s', (engine) => {
  useEngine(engine);

  describe('a key planted by a script that ran once', () => {
    it('before login: never bound; the client makes its own key for the new session, and the planter’s proofs with a copied token are refused', async () => {
      const { context, page } = await freshPage();
      try {
        const attacker = await attackerKey();
        await plant(page, 'known', attacker.privateJwk);
        await page.reload(); // a later visit: a new run of the client
        // The record is a well-formed non-extractable key pair: the client uses it as it finds it...
        expect(await thumbprint(page)).toBe(attacker.jkt);
        expect(await login(page)).toBe(200);
        const refusalsBefore = refusals.length;
        const { value: token } = await handshake(page);
        // ...but never asks to bind it: the server answered 409, and the client made a key of its own.
        expect(refusals.slice(refusalsBefore)).toEqual(['ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED']);
        expect(token).toBeDefined();
        const jkt = await jktOf(token!);
        expect(jkt).not.toBe(attacker.jkt);
        expect(bound).not.toContain(attacker.jkt);
        expect(await thumbprint(page)).toBe(jkt); // stored in place of the planted one
        expect(await api(page, token!)).toBe(200);
        expect(await attackerCall(attacker.key, token!)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });
      } finally {
        await context.close();
      }
    });

    it('after binding: the user gets ERR_TOKENSEC_DPOP_KEY_MISMATCH (403), and logging in again brings a new key of its own', async () => {
      const { context, page } = await freshPage();
      try {
        expect(await login(page)).toBe(200);
        const first = await handshake(page);
        const firstJkt = await jktOf(first.value!);
        const attacker = await attackerKey();
        await plant(page, 'known', attacker.privateJwk);
        await page.reload();
        expect(await handshake(page)).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH', status: 403 });
        // The documented way back: log in again (the server regenerates the session).
        expect(await login(page)).toBe(200);
        const { value: token } = await handshake(page);
        const jkt = await jktOf(token!);
        expect([attacker.jkt, firstJkt]).not.toContain(jkt);
        expect(bound).not.toContain(attacker.jkt);
        expect(await api(page, token!)).toBe(200);
        expect(await attackerCall(attacker.key, token!)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });
      } finally {
        await context.close();
      }
    });
  });

  describe('two tabs binding at once end up on one key, and neither is locked out', () => {
    it.each([
      ['no key stored yet', false],
      ['a key from an earlier run stored', true],
    ])('logged in once, both tabs hand-shake at once: %s', async (_name, stale) => {
      const context = await browser.newContext();
      try {
        const tabs = await Promise.all([freshPage(context), freshPage(context)]).then((pages) => pages.map((p) => p.page));
        const [one, two] = tabs as [Page, Page];
        if (stale) await thumbprint(one);
        expect(await login(one)).toBe(200);
        await Promise.all(tabs.map((tab) => tab.reload())); // neither run made the stored key
        const results = (await atOnce(tabs, () => (window as any).outcome((window as any).TokenSec.handshake({ uri: '/token' })))) as {
          value?: string;
        }[];
        const jkts = await Promise.all(results.map((r) => jktOf(r.value!)));
        expect(jkts[0]).toBe(jkts[1]);
        expect(await thumbprint(one)).toBe(jkts[0]);
        expect(await thumbprint(two)).toBe(jkts[0]);
        expect(await Promise.all(tabs.map((tab, i) => api(tab, results[i]!.value!)))).toEqual([200, 200]);
      } finally {
        await context.close();
      }
    });

    /**
     * Both tabs send their login at once, from the same session; the server regenerates it twice
     * (two new sessions) and answers in an order the test chooses. The browser keeps the cookie of
     * the login answered last. A tab's API call binds the session its cookie names at that moment
     * to a key made fresh for it.
     */
    async function twoLogins(context: EngineContext) {
      const tabs = await Promise.all([freshPage(context), freshPage(context)]).then((pages) => pages.map((p) => p.page) as [Page, Page]);
      const held = new Map<string, () => void>();
      let bothArrived!: () => void;
      const arrived = new Promise<void>((resolve) => (bothArrived = resolve));
      holdLogin = (tab) =>
        new Promise<void>((release) => {
          held.set(tab, release);
          if (held.size === 2) bothArrived();
        });
      await Promise.all(
        tabs.map((tab, i) =>
          tab.evaluate((name) => {
            const w = window as any;
            const csrf = decodeURIComponent(/(?:^|; )tokensec=([^;]*)/.exec(document.cookie)?.[1] ?? '');
            w.loggedIn = fetch('/login', {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, 'x-tab': name },
              body: '{}',
            }).then((r) => r.status);
          }, String(i)),
        ),
      );
      await arrived; // both logins are on the server, each with its new session, neither answered
      holdLogin = undefined;
      /** Answers tab i's login and waits until the tab has its answer (and the browser its cookie). */
      const answer = async (i: number) => {
        held.get(String(i))!();
        expect(await tabs[i]!.evaluate(() => (window as any).loggedIn as Promise<number>)).toBe(200);
      };
      return { tabs, answer };
    }

    const callApi = (tab: Page) =>
      tab.evaluate(async () => {
        const w = window as any;
        w.tokenSession ??= w.TokenSec.session({ uri: '/token' });
        const response = await w.tokenSession.fetch('/api/me');
        return { status: response.status as number, key: (await w.TokenSec.getDpopKey()).thumbprint as string };
      });

    it('both tabs log in at once, answered in turn, then call the API at once through TokenSec.session(): one key, both 200', async () => {
      const context = await browser.newContext();
      try {
        const { tabs, answer } = await twoLogins(context);
        await answer(0);
        await answer(1);
        // Both calls run on the second login's session: the two first handshakes bind it to one key.
        const before = bound.length;
        const results = (await atOnce(tabs, async () => {
          const w = window as any;
          const response = await w.TokenSec.session({ uri: '/token' }).fetch('/api/me');
          return { status: response.status as number, key: (await w.TokenSec.getDpopKey()).thumbprint as string };
        })) as { status: number; key: string }[];
        expect(results.map((r) => r.status)).toEqual([200, 200]);
        expect(results[0]!.key).toBe(results[1]!.key);
        expect(new Set(bound.slice(before))).toEqual(new Set([results[0]!.key]));
      } finally {
        holdLogin = undefined;
        await context.close();
      }
    });

    it('both tabs log in at once; the first calls the API before the second login is answered: each session its own key, both tabs keep working', async () => {
      const context = await browser.newContext();
      try {
        const { tabs, answer } = await twoLogins(context);
        const [one, two] = tabs;
        await answer(0);
        const first = await callApi(one); // binds the first login's session
        await answer(1);
        const second = await callApi(two); // the second login's session: a fresh key of its own
        expect([first.status, second.status]).toEqual([200, 200]);
        expect(second.key).not.toBe(first.key);
        expect(bound.slice(-2)).toEqual([first.key, second.key]);
        // The browser is on the second session now: both tabs call through it, with the key it is bound to.
        expect(await callApi(two)).toEqual({ status: 200, key: second.key });
        expect((await callApi(one)).status).toBe(200);
      } finally {
        holdLogin = undefined;
        await context.close();
      }
    });
  });

  describe('the browser clock ten minutes off', () => {
    it.each([10, -10])('%i minutes: the handshake retries once by the server’s clock, and API calls then pass', async (minutes) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      // Before the page's scripts in Chromium and Firefox, after them in WebKit (engines.ts): either
      // way before the client makes a proof, and it reads Date.now() when it does.
      await page.addInitScript((shift: number) => {
        const RealDate = Date;
        class ShiftedDate extends RealDate {
          constructor(...args: unknown[]) {
            super(...((args.length ? args : [RealDate.now() + shift]) as []));
          }
          static override now() {
            return RealDate.now() + shift;
          }
        }
        (globalThis as any).Date = ShiftedDate;
      }, minutes * 60_000);
      try {
        await page.goto(`${origin}/`);
        const skew = await page.evaluate(() => Date.now());
        expect(Math.round((skew - Date.now()) / 60_000)).toBe(minutes);
        expect(await login(page)).toBe(200);
        const before = refusals.length;
        const statuses = await page.evaluate(async () => {
          const s = (window as any).TokenSec.session({ uri: '/token', retries: 0 });
          const first = await s.fetch('/api/me');
          const second = await s.fetch('/api/me');
          return [first.status, second.status];
        });
        expect(statuses).toEqual([200, 200]);
        // One refusal: the handshake's first proof, dated by the browser's clock.
        expect(refusals.slice(before)).toEqual(['ERR_TOKENSEC_DPOP_INVALID_PROOF']);
      } finally {
        await context.close();
      }
    });
  });

  describe('the handshake in the page', () => {
    it('a server nonce: one 401 use_dpop_nonce, then answered', async () => {
      const { context, page } = await freshPage();
      try {
        expect(await login(page)).toBe(200);
        const before = refusals.length;
        const { value: token } = await handshake(page, '/token-nonce');
        expect(await api(page, token!)).toBe(200);
        expect(refusals.slice(before)).toEqual(['ERR_TOKENSEC_DPOP_NONCE_REQUIRED']);
      } finally {
        await context.close();
      }
    });

    it('403 KEY_MISMATCH, 500 PAYLOAD_TOO_LARGE and 401 not logged in look different', async () => {
      const { context, page } = await freshPage();
      try {
        const notLoggedIn = await handshake(page);
        expect(await login(page)).toBe(200);
        const large = await handshake(page, '/token-large');
        expect(await login(page, 'A'.repeat(43))).toBe(200); // bound at login to a key this page does not hold
        const mismatch = await handshake(page);
        expect(notLoggedIn).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_HTTP_STATUS', status: 401 });
        expect(mismatch).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH', status: 403 });
        expect(large).toEqual({ name: 'TokenSecError', code: 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE', status: 500 });
      } finally {
        await context.close();
      }
    });

    it('login-time binding with rotateDpopKey(): the session bound at login to the new key answers at once', async () => {
      const { context, page } = await freshPage();
      try {
        const attacker = await attackerKey();
        await plant(page, 'known', attacker.privateJwk);
        await page.reload();
        const before = refusals.length;
        const jkt = await page.evaluate(async () => {
          const w = window as any;
          const key = await w.TokenSec.rotateDpopKey(); // made in this run, never the stored one
          await w.login(key.thumbprint);
          return key.thumbprint as string;
        });
        expect(jkt).not.toBe(attacker.jkt);
        const { value: token } = await handshake(page);
        expect(await jktOf(token!)).toBe(jkt);
        expect(refusals.slice(before)).toEqual([]);
      } finally {
        await context.close();
      }
    });
  });

  describe('a stored record that is not a usable key pair is replaced by a new key', () => {
    it.each(['extractable', 'mismatched', 'wrong-algorithm', 'garbage'])('%s', async (kind) => {
      const { context, page } = await freshPage();
      try {
        await plant(page, kind);
        await page.reload();
        const key = await page.evaluate(async () => {
          const k = await (window as any).TokenSec.getDpopKey();
          return { thumbprint: k.thumbprint as string, extractable: k.privateKey.extractable as boolean, algorithm: k.algorithm as string };
        });
        expect(key).toMatchObject({ extractable: false, algorithm: 'ES256' });
        // Made in this run: logged in, the handshake binds it at once and the API accepts its proofs.
        expect(await login(page)).toBe(200);
        const before = refusals.length;
        const { value: token } = await handshake(page);
        expect(await jktOf(token!)).toBe(key.thumbprint);
        expect(refusals.slice(before)).toEqual([]);
        expect(await api(page, token!)).toBe(200);
        await page.reload();
        expect(await thumbprint(page)).toBe(key.thumbprint); // stored in place of the bad record
      } finally {
        await context.close();
      }
    });
  });
});
