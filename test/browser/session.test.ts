/**
 * TokenSec.session() in each engine (Chromium, Firefox, WebKit), against a real Express app: csurf, the handshake binding tokens
 * to the page's DPoP key, and API routes behind tokenSec.dpop(). The server counts handshakes and
 * can answer them with an error status or late, so each test sees exactly what the session did.
 * Times are real and short (tokens living 2 s), so the server and the browser agree on the clock
 * that DPoP proofs and tokens are checked against.
 */
import cookieParser from 'cookie-parser';
import cors from 'cors';
import csurf from 'csurf';
import express, { type ErrorRequestHandler } from 'express';
import { SignJWT, jwtVerify } from 'jose';
import type { Page as PlaywrightPage } from 'playwright-core';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import tokenSec from '../../src/index.js';
import { engines, launch, type Engine, type EngineBrowser, type EngineContext, type EnginePage as Page } from '../support/engines.js';
import { listen } from '../support/helpers.js';

const signingKey = randomBytes(32);
/** What the handshake route does next, and what it and the API saw. Reset before each test. */
let state: {
  handshakes: number;
  /** Statuses to answer the next handshakes with, instead of the token. */
  refuse: number[];
  /** Milliseconds to hold each handshake before answering. */
  delay: number;
  /** Seconds the next tokens live. */
  lifetime: number;
  /** Send a bare JWT (expiry in `exp`) instead of { access_token, expires_in }. */
  bare: boolean;
  /** Seconds before now to put in the JWT's iat (none when undefined). */
  issuedAgo: number | undefined;
  tokens: string[];
  revoked: Set<string>;
  crossOrigin: (string | undefined)[];
  /** Handshakes being answered now, and the most at once. */
  inFlight: number;
  maxInFlight: number;
  /** What /api/seen received: the headers that show fetch's options, and the DPoP proof. */
  seen: { referer?: string; pragma?: string; authorization?: string; dpop?: string }[];
};
const reset = () =>
  (state = {
    handshakes: 0,
    refuse: [],
    delay: 0,
    lifetime: 300,
    bare: false,
    issuedAgo: undefined,
    tokens: [],
    revoked: new Set(),
    crossOrigin: [],
    inFlight: 0,
    maxInFlight: 0,
    seen: [],
  });
reset();

async function issueToken(jkt: string | undefined): Promise<string> {
  // A marker no other string in the page contains, so a heap snapshot can look for it.
  const jwt = new SignJWT({ cnf: { jkt }, marker: `secret-token-${state.tokens.length}-${randomBytes(6).toString('hex')}` })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + state.lifetime);
  if (state.issuedAgo !== undefined) jwt.setIssuedAt(Math.floor(Date.now() / 1000) - state.issuedAgo);
  const token = await jwt.sign(signingKey);
  state.tokens.push(token);
  return state.bare ? token : JSON.stringify({ access_token: token, expires_in: state.lifetime });
}

const verifyToken = async (token: string) => {
  if (state.revoked.has(token)) throw new Error('revoked');
  return (await jwtVerify(token, signingKey)).payload as { cnf: { jkt: string } };
};

let browser: EngineBrowser;
let origin: string;
let otherOrigin: string;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  // Another origin (localhost, not 127.0.0.1) that records the Authorization header it receives.
  const other = express();
  const otherServer = await listen(other);
  otherOrigin = otherServer.origin.replace('127.0.0.1', 'localhost');
  closers.push(otherServer.close);

  const app = express();
  // API routes authenticate with DPoP-bound tokens, which no browser sends on its own: no CSRF check.
  app.get('/api/me', tokenSec.dpop({ verifyToken, nonce: false }), (req, res) =>
    res.json({ ok: true, jkt: (req as typeof req & { tokenSec?: { jkt: string } }).tokenSec?.jkt }),
  );
  app.post('/api/echo', tokenSec.dpop({ verifyToken, nonce: false }), express.text(), (req, res) =>
    res.type('text').send(`echo:${req.body}`),
  );
  app.get('/api/nonce', tokenSec.dpop({ verifyToken, nonce: true }), (_req, res) => res.json({ ok: true }));
  app.get('/api/seen', (req, res) => {
    const { referer, pragma, authorization, dpop } = req.headers as Record<string, string | undefined>;
    state.seen.push({ referer, pragma, authorization, dpop });
    res.json({ ok: true });
  });
  app.get('/api/slow', (_req, res) => void setTimeout(() => res.json({ ok: true }), 1500));
  // An open redirect on an allowed origin.
  app.get('/api/redirect', (req, res) => res.redirect(302, String(req.query.to)));
  app.get('/plain', (_req, res) => res.json({ plain: true }));
  app.get('/api/always-401', (_req, res) => res.status(401).set('www-authenticate', 'DPoP error="invalid_token"').end());
  app.use(cookieParser());
  app.use(csurf({ cookie: { sameSite: 'strict' } }));
  app.use(tokenSec.initialize({ cookie: true }));
  const page = (script: string) => `<!doctype html><title>session</title><script src="${script}"></script>`;
  app.get('/', (_req, res) => res.type('html').send(page('/tokensec-session.js')));
  app.get('/sealed', (_req, res) => res.type('html').send(page('/tokensec-sealed.js')));
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));
  app.get('/tokensec-sealed.js', tokenSec.client({ bundle: 'sealed' }));
  app.post(
    '/token',
    (_req, res, next) => {
      state.handshakes++;
      state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
      res.on('close', () => state.inFlight--);
      const status = state.refuse.shift();
      // A bare status: no TokenSec-Error header, no JSON code (the client's ERR_TOKENSEC_HTTP_STATUS fallback).
      if (status) res.sendStatus(status);
      else setTimeout(next, state.delay);
    },
    // Nonces off: these tests count handshakes and API calls; the nonce round trip is tested below
    // (/api/nonce) and in test/unit/client/retries.test.ts.
    tokenSec.handshake({ payload: (_req, _res, { jkt }) => issueToken(jkt), terminate: true, dpop: { nonce: false } }),
  );
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    res.set(err.headers ?? {});
    res.status(err.status ?? 500).json({ code: err.code });
  };
  app.use(onError);
  const server = await listen(app);
  origin = server.origin;
  closers.push(server.close);

  other.use(cors({ origin, credentials: true, allowedHeaders: ['authorization', 'dpop'] }));
  // Another origin that answers 401 with a nonce of its choosing, exposed to the page.
  other.get('/nonce-401', (req, res) => {
    state.crossOrigin.push(req.headers.authorization);
    res
      .status(401)
      .set({
        'www-authenticate': 'DPoP error="use_dpop_nonce"',
        'dpop-nonce': 'attacker-nonce',
        'access-control-expose-headers': 'www-authenticate, dpop-nonce',
      })
      .end();
  });
  other.get('/echo', (req, res) => {
    state.crossOrigin.push(req.headers.authorization);
    res.json({ ok: true });
  });
});
afterAll(async () => {
  await Promise.all(closers.map((close) => close()));
});
beforeEach(reset);

/** Each describe.each block starts its engine's browser for its tests. */
function useEngine(engine: Engine) {
  beforeAll(async () => {
    browser = await launch(engine);
  });
  afterAll(() => browser?.close());
}

/** A fresh browser context (its own IndexedDB and channels) with a page on `path` that records the session's events. */
async function open(path = '/'): Promise<{ context: EngineContext; page: Page; problems: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  await page.goto(`${origin}${path}`);
  return { context, page, problems };
}

/** Starts `TokenSec.session(options)` in the page as window.session, recording events in window.events. */
const start = (page: Page, options: Record<string, unknown> = {}) =>
  page.evaluate((opts) => {
    const w = window as any;
    w.events = [];
    w.states = [];
    w.session = w.TokenSec.session({ uri: '/token', ...opts });
    w.session.addEventListener('state', (e: CustomEvent) => w.states.push(e.detail));
    for (const type of ['token', 'refresh', 'error', 'expired'])
      w.session.addEventListener(type, (e: CustomEvent) =>
        w.events.push({ type, code: e.detail?.code, status: e.detail?.status, expiresAt: e.detail?.expiresAt }),
      );
  }, options);

const getToken = (page: Page) =>
  page.evaluate(() =>
    (window as any).session.getToken().then(
      (token: string) => ({ token }),
      (e: any) => ({ code: e.code, status: e.status }),
    ),
  );
const events = (page: Page) => page.evaluate(() => (window as any).events.map((e: { type: string }) => e.type) as string[]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The page's clock, in the test's hands: Date.now, setTimeout and clearTimeout of the page are
 * replaced by a clock that moves only when the test calls `advance(page, ms)`, which runs the timers
 * that fall due, in order. A refresh timer then fires when the test says, however slow the machine.
 * (Installed after load: the session client reads these globals when it calls them.)
 */
const installClock = (page: Page) =>
  page.evaluate(() => {
    const w = window as any;
    let now = Date.now();
    let nextId = 1;
    const timers = new Map<number, { at: number; run: () => void }>();
    Date.now = () => now;
    w.setTimeout = (run: () => void, ms?: number) => {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, Number(ms) || 0), run });
      return id;
    };
    w.clearTimeout = (id: number) => void timers.delete(id);
    w.testClock = (ms: number) => {
      const end = now + ms;
      for (;;) {
        let due: [number, { at: number; run: () => void }] | undefined;
        for (const entry of timers) if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry;
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].run();
      }
      now = end;
    };
  });
const advance = (page: Page, ms: number) => page.evaluate((m) => (window as any).testClock(m), ms);
/** Waits (polling from here, not in the page, whose timers are the test's) until the page has recorded `count` session events. */
async function eventCount(page: Page, count: number): Promise<string[]> {
  for (let tries = 0; ; tries++) {
    const seen = await events(page);
    if (seen.length >= count) return seen;
    if (tries > 500) throw new Error(`waited for ${count} session events; saw ${JSON.stringify(seen)}`);
    await sleep(20);
  }
}

describe.each(engines)('TokenSec.session() in %s', (engine) => {
  useEngine(engine);
  it('caches the token: ten concurrent callers and later calls cause one handshake', async () => {
    const { context, page, problems } = await open();
    try {
      await start(page);
      const tokens = await page.evaluate(() => Promise.all(Array.from({ length: 10 }, () => (window as any).session.getToken())));
      expect(new Set(tokens)).toEqual(new Set([state.tokens[0]]));
      expect(await getToken(page)).toEqual({ token: state.tokens[0] });
      expect(state.handshakes).toBe(1);
      expect(await events(page)).toEqual(['token']);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('five callers in each of two tabs: one handshake per tab, never two at once (Web Locks)', async () => {
    const context = await browser.newContext();
    try {
      state.delay = 300;
      const tabs = await Promise.all([context.newPage(), context.newPage()]);
      await Promise.all(tabs.map((tab) => tab.goto(`${origin}/`)));
      await Promise.all(tabs.map((tab) => start(tab)));
      // Started in both tabs before either is awaited (WebDriver runs one command at a time).
      for (const tab of tabs)
        await tab.evaluate(() => {
          (window as any).pending = Promise.all(Array.from({ length: 5 }, () => (window as any).session.getToken()));
        });
      const tokens = await Promise.all(tabs.map((tab) => tab.evaluate(() => (window as any).pending as Promise<string[]>)));
      // Each tab has its own token (the tabs share none), got one after the other.
      expect(tokens.map((t) => new Set(t).size)).toEqual([1, 1]);
      expect(new Set(tokens.flat())).toEqual(new Set(state.tokens));
      expect(state.handshakes).toBe(2);
      expect(state.maxInFlight).toBe(1);
    } finally {
      await context.close();
    }
  });

  it('getToken({ cacheMode: "off" }) runs a handshake despite a cached token; { detailed: true } gives its expiry too', async () => {
    const { context, page } = await open();
    try {
      await start(page);
      const result = await page.evaluate(async () => {
        const s = (window as any).session;
        const first = await s.getToken();
        const bypassed = await s.getToken({ cacheMode: 'off' });
        const detailed = await s.getToken({ detailed: true });
        return { first, bypassed, detailed, expiresAt: s.expiresAt, lastEvent: (window as any).events.at(-1).expiresAt };
      });
      expect(result.first).toBe(state.tokens[0]);
      expect(result.bypassed).toBe(state.tokens[1]);
      expect(result.detailed).toEqual({ token: state.tokens[1], expiresAt: result.lastEvent });
      expect(result.expiresAt).toBe(result.lastEvent);
      expect(state.handshakes).toBe(2);
    } finally {
      await context.close();
    }
  });

  it('sessions of two endpoints never share a token, even in one page', async () => {
    const { context, page } = await open();
    try {
      const tokens = await page.evaluate(async () => {
        const { session } = (window as any).TokenSec;
        const first = session({ uri: '/token' });
        const second = session({ uri: '/token?audience=other' });
        const a = await first.getToken();
        await new Promise((resolve) => setTimeout(resolve, 100));
        return [a, await second.getToken()];
      });
      expect(tokens).toEqual([state.tokens[0], state.tokens[1]]);
      expect(state.handshakes).toBe(2);
    } finally {
      await context.close();
    }
  });

  it('reads the expiry from { access_token, expires_in }, from a bare JWT’s exp, and from its exp - iat', async () => {
    const { context, page } = await open();
    try {
      state.lifetime = 120;
      await start(page);
      const before = Date.now();
      await getToken(page);
      const [fromResponse] = await page.evaluate(() => (window as any).events.map((e: any) => e.expiresAt));
      expect(fromResponse).toBeGreaterThanOrEqual(before + 119_000);
      expect(fromResponse).toBeLessThanOrEqual(Date.now() + 121_000);

      state.bare = true;
      await page.evaluate(() => (window as any).session.clear());
      const { token } = await getToken(page);
      const exp = JSON.parse(Buffer.from(String(token).split('.')[1] ?? '', 'base64url').toString()).exp;
      const latest = await page.evaluate(() => (window as any).events.at(-1).expiresAt);
      expect(latest).toBe(exp * 1000);

      // With iat, the JWT's lifetime (exp - iat) counts from its arrival: here 60 + 120 s.
      state.issuedAgo = 60;
      await page.evaluate(() => (window as any).session.clear());
      const arrival = Date.now();
      await getToken(page);
      const fromLifetime = await page.evaluate(() => (window as any).events.at(-1).expiresAt);
      expect(fromLifetime).toBeGreaterThanOrEqual(arrival + 179_000);
      expect(fromLifetime).toBeLessThanOrEqual(Date.now() + 181_000);
    } finally {
      await context.close();
    }
  });

  it('refreshes before expiry: a token living 2 s with a 1 s leeway is replaced 1 s after it came', async () => {
    const { context, page } = await open();
    try {
      state.lifetime = 2;
      await start(page, { leeway: 1 });
      await installClock(page);
      const first = await getToken(page);
      await advance(page, 999);
      expect(await events(page)).toEqual(['token']);
      await advance(page, 1);
      expect((await eventCount(page, 3)).slice(0, 3)).toEqual(['token', 'refresh', 'token']);
      const second = await getToken(page);
      expect(second.token).toBe(state.tokens[1]);
      expect(second.token).not.toBe(first.token);
      expect(state.handshakes).toBe(2);
      // The first token had not expired when the second arrived.
      const [a, , b] = await page.evaluate(() => (window as any).events.map((e: any) => e.expiresAt));
      expect(b).toBe(a + 1000);
    } finally {
      await context.close();
    }
  });

  it('does not refresh while the page is hidden; refreshes at once when it is shown again', async () => {
    const { context, page } = await open();
    try {
      state.lifetime = 2;
      await start(page, { leeway: 1 });
      await installClock(page);
      await getToken(page);
      const setVisibility = (value: string) =>
        page.evaluate((v) => {
          Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => v });
          document.dispatchEvent(new Event('visibilitychange'));
        }, value);
      await setVisibility('hidden');
      await advance(page, 1600); // past the time to refresh
      expect(state.handshakes).toBe(1);
      await setVisibility('visible');
      await advance(page, 0);
      expect(await eventCount(page, 3)).toEqual(['token', 'refresh', 'token']);
      expect(state.handshakes).toBe(2);
    } finally {
      await context.close();
    }
  });

  it('the online event also resumes refreshing (a page shown while the browser was offline)', async () => {
    const { context, page } = await open();
    try {
      state.lifetime = 2;
      await start(page, { leeway: 1 });
      await installClock(page);
      await getToken(page);
      await page.evaluate(() => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await advance(page, 1300);
      expect(state.handshakes).toBe(1);
      // Visible again without a visibilitychange event; only online tells the session.
      await page.evaluate(() => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
        window.dispatchEvent(new Event('online'));
      });
      await advance(page, 0);
      expect(await eventCount(page, 3)).toEqual(['token', 'refresh', 'token']);
    } finally {
      await context.close();
    }
  });

  it('retries a 503 with backoff, and gives up after `retries` with the last error', async () => {
    const { context, page } = await open();
    try {
      state.refuse = [503, 503];
      await start(page, { retryDelay: 50 });
      expect(await getToken(page)).toEqual({ token: state.tokens[0] });
      expect(state.handshakes).toBe(3);

      reset();
      state.refuse = [503, 503, 503, 503, 503];
      await page.evaluate(() => (window as any).session.clear());
      expect(await getToken(page)).toEqual({ code: 'ERR_TOKENSEC_HTTP_STATUS', status: 503 });
      expect(state.handshakes).toBe(4); // the first try and 3 retries
      expect((await page.evaluate(() => (window as any).events.at(-1))) as object).toMatchObject({
        type: 'error',
        code: 'ERR_TOKENSEC_HTTP_STATUS',
        status: 503,
      });
    } finally {
      await context.close();
    }
  });

  it('a handshake slower than `timeout` fails with ERR_TOKENSEC_TIMEOUT and is retried like a network error', async () => {
    const { context, page } = await open();
    try {
      state.delay = 3000;
      // The key first, so each try's time goes to the handshake itself, even on a slow machine.
      await page.evaluate(() => (window as any).TokenSec.getDpopKey());
      await start(page, { timeout: 1000, retries: 1, retryDelay: 10 });
      expect(await getToken(page)).toEqual({ code: 'ERR_TOKENSEC_TIMEOUT' });
      expect(state.handshakes).toBe(2);
    } finally {
      await context.close();
    }
  });

  it('never retries a 4xx: one 403 is one handshake and an error event', async () => {
    const { context, page } = await open();
    try {
      state.refuse = [403];
      await start(page);
      expect(await getToken(page)).toEqual({ code: 'ERR_TOKENSEC_HTTP_STATUS', status: 403 });
      expect(state.handshakes).toBe(1);
      expect(await events(page)).toEqual(['error']);
    } finally {
      await context.close();
    }
  });

  it('an aborted caller gets ERR_TOKENSEC_ABORTED; clear() cancels the handshake for everyone', async () => {
    const { context, page } = await open();
    try {
      state.delay = 1500;
      await start(page);
      await page.evaluate(() => {
        const w = window as any;
        w.controller = new AbortController();
        w.aborted = w.session.getToken({ signal: w.controller.signal }).catch((e: any) => e.code);
        w.waiting = w.session.getToken().catch((e: any) => e.code);
      });
      // Abort once the handshake is at the server (not after a fixed time: key making may be slow).
      for (let waited = 0; state.handshakes === 0 && waited < 10_000; waited += 20) await sleep(20);
      const result = await page.evaluate(async () => {
        const w = window as any;
        w.controller.abort();
        const first = await w.aborted;
        w.session.clear();
        return { first, second: await w.waiting };
      });
      expect(result).toEqual({ first: 'ERR_TOKENSEC_ABORTED', second: 'ERR_TOKENSEC_ABORTED' });
      await sleep(1700);
      // The cancelled handshake's answer, had it come, is not kept: no token event.
      expect(await events(page)).toEqual([]);
      expect(state.handshakes).toBe(1);
    } finally {
      await context.close();
    }
  });

  it('logout (clear) stops the refresh timer: no handshake after it', async () => {
    const { context, page } = await open();
    try {
      state.lifetime = 2;
      await start(page, { leeway: 1 });
      await installClock(page);
      await getToken(page);
      await page.evaluate(() => (window as any).session.clear());
      await advance(page, 2500); // past the time to refresh, and past the token's expiry
      expect(state.handshakes).toBe(1);
      expect(await events(page)).toEqual(['token']);
    } finally {
      await context.close();
    }
  });

  it('fetch attaches the token and a DPoP proof on its own origin, and nothing elsewhere', async () => {
    const { context, page } = await open();
    try {
      await start(page);
      const result = await page.evaluate(async (other) => {
        const w = window as any;
        const me = await (await w.session.fetch('/api/me')).json();
        const echo = await (
          await w.session.fetch('/api/echo', { method: 'POST', body: 'hi', headers: { 'content-type': 'text/plain' } })
        ).text();
        const cross = (await w.session.fetch(`${other}/echo`)).status;
        return { me, echo, cross, thumbprint: (await w.TokenSec.getDpopKey()).thumbprint };
      }, otherOrigin);
      expect(result.me).toEqual({ ok: true, jkt: result.thumbprint });
      expect(result.echo).toBe('echo:hi');
      expect(result.cross).toBe(200);
      expect(state.crossOrigin).toEqual([undefined]);
      expect(state.handshakes).toBe(1);
    } finally {
      await context.close();
    }
  });

  it('an origin on the allowlist gets the token; a look-alike origin does not', async () => {
    const { context, page } = await open();
    try {
      await start(page, { origins: [originOf(origin), `${otherOrigin}/any/path`] });
      await page.evaluate((other) => (window as any).session.fetch(`${other}/echo`), otherOrigin);
      const lookAlike = otherOrigin.replace('localhost', 'localhost.') + '/echo';
      await page.evaluate((url) => (window as any).session.fetch(url).catch(() => 'network error'), lookAlike);
      expect(state.crossOrigin).toEqual([expect.stringMatching(/^DPoP [\w-]+\.[\w-]+\.[\w-]+$/), undefined]);
    } finally {
      await context.close();
    }
  });

  it('a 401 challenge: a refused token is replaced once and the call retried once', async () => {
    const { context, page } = await open();
    try {
      await start(page);
      await getToken(page);
      state.revoked.add(state.tokens[0] ?? '');
      const status = await page.evaluate(async () => (await (window as any).session.fetch('/api/me')).status);
      expect(status).toBe(200);
      expect(state.handshakes).toBe(2);
      // A route that refuses every token: one retry, then its 401 is the answer.
      const always = await page.evaluate(async () => (await (window as any).session.fetch('/api/always-401')).status);
      expect(always).toBe(401);
      expect(state.handshakes).toBe(3);
    } finally {
      await context.close();
    }
  });

  it('a use_dpop_nonce challenge is answered with the nonce and the same token', async () => {
    const { context, page } = await open();
    try {
      await start(page);
      const statuses = await page.evaluate(async () => {
        const w = window as any;
        return [(await w.session.fetch('/api/nonce')).status, (await w.session.fetch('/api/nonce')).status];
      });
      expect(statuses).toEqual([200, 200]);
      expect(state.handshakes).toBe(1);
    } finally {
      await context.close();
    }
  });

  it('refuses bad options with ERR_TOKENSEC_INVALID_OPTIONS, and sealed without the sealed bundle', async () => {
    const { context, page } = await open();
    try {
      const codes = await page.evaluate(() =>
        [{ leeway: -1 }, { origins: ['not a url'] }, { retries: Number.NaN }, { sealed: '/tokensec-sealed.js' }, null].map((o) => {
          try {
            (window as any).TokenSec.session(o);
            return 'started';
          } catch (e: any) {
            return e.code;
          }
        }),
      );
      expect(codes).toEqual(Array(5).fill('ERR_TOKENSEC_INVALID_OPTIONS'));
    } finally {
      await context.close();
    }
  });
});

const originOf = (url: string) => new URL(url).origin;

describe.each(engines)('sealed mode in %s', (engine) => {
  useEngine(engine);

  it('fetch works through the worker; the page gets no getToken, and no token in events or on the channel', async () => {
    const { context, page, problems } = await open('/sealed');
    try {
      await start(page);
      const result = await page.evaluate(async () => {
        const w = window as any;
        w.heard = [];
        new BroadcastChannel(`tokensec:${location.origin}/token`).onmessage = (e) => w.heard.push(e.data);
        const me = await (await w.session.fetch('/api/me')).json();
        const echo = await (
          await w.session.fetch('/api/echo', { method: 'POST', body: 'sealed', headers: { 'content-type': 'text/plain' } })
        ).text();
        return { me, echo, getToken: typeof w.session.getToken, events: w.events, heard: w.heard };
      });
      expect(result.me).toMatchObject({ ok: true, jkt: expect.stringMatching(/^[\w-]{43}$/) });
      expect(result.echo).toBe('echo:sealed');
      expect(result.getToken).toBe('undefined');
      expect(result.events).toEqual([{ type: 'token', expiresAt: expect.any(Number) }]);
      expect(result.heard).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('its limit: a script in a sealed page still uses the session, and can run a handshake of its own', async () => {
    const { context, page } = await open('/sealed');
    try {
      await start(page);
      const injected = await page.evaluate(async () => {
        const w = window as any;
        // What an injected script can do: call the session, and do what the session's worker does.
        const viaSession = (await w.session.fetch('/api/me')).status;
        const own = await w.TokenSec.handshake({ uri: '/token' });
        return { viaSession, own };
      });
      expect(injected.viaSession).toBe(200);
      // The token it got is bound to the page's key (it cannot export that key), like the session's.
      const claims = JSON.parse(Buffer.from(injected.own.split('.')[1] ?? '', 'base64url').toString());
      const jkt = await page.evaluate(async () => (await (window as any).TokenSec.getDpopKey()).thumbprint);
      expect(claims.cnf.jkt).toBe(jkt);
    } finally {
      await context.close();
    }
  });

  it('a worker that cannot start fails every call with ERR_TOKENSEC_SESSION_WORKER', async () => {
    const { context, page } = await open('/sealed');
    try {
      const codes = await page.evaluate(async () => {
        const session = (window as any).TokenSec.session({ uri: '/token', sealed: '/no-such-worker.js' });
        const code = () =>
          session.fetch('/api/me').then(
            () => 'ok',
            (e: any) => e.code,
          );
        return [await code(), await code()];
      });
      expect(codes).toEqual(['ERR_TOKENSEC_SESSION_WORKER', 'ERR_TOKENSEC_SESSION_WORKER']);
    } finally {
      await context.close();
    }
  });

  it('a worker that failed to start before any call: the first call fails with ERR_TOKENSEC_SESSION_WORKER, no wait', async () => {
    const { context, page } = await open('/sealed');
    try {
      const code = await page.evaluate(async () => {
        const session = (window as any).TokenSec.session({ uri: '/token', sealed: '/no-such-worker.js' });
        // Time for the worker's load error to arrive while no call waits (if it comes later, the call gets it then).
        await new Promise((resolve) => setTimeout(resolve, 1000));
        return session.fetch('/api/me').then(
          () => 'ok',
          (e: any) => e.code,
        );
      });
      expect(code).toBe('ERR_TOKENSEC_SESSION_WORKER');
    } finally {
      await context.close();
    }
  });
});

// Chromium-only: heap snapshots through the DevTools protocol (CDP).
describe('sealed mode in Chromium: the page heap (CDP heap snapshots, Chromium-only)', () => {
  useEngine('Chromium');

  /** The page's JavaScript heap, as a snapshot's text: every string the page can reach is in it. */
  async function heapText(enginePage: Page): Promise<string> {
    const page = enginePage as unknown as PlaywrightPage;
    const cdp = await page.context().newCDPSession(page);
    const chunks: string[] = [];
    cdp.on('HeapProfiler.addHeapSnapshotChunk', ({ chunk }) => chunks.push(chunk));
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    await cdp.detach();
    return chunks.join('');
  }

  it('fetch works through the worker; the page gets no getToken, no token in events, and the token is not in its heap', async () => {
    const { context, page, problems } = await open('/sealed');
    try {
      await start(page);
      const result = await page.evaluate(async () => {
        const w = window as any;
        // A script in the page listening where tabs share tokens hears nothing from a sealed session.
        w.heard = [];
        new BroadcastChannel(`tokensec:${location.origin}/token`).onmessage = (e) => w.heard.push(e.data);
        const me = await (await w.session.fetch('/api/me')).json();
        const echo = await (
          await w.session.fetch('/api/echo', { method: 'POST', body: 'sealed', headers: { 'content-type': 'text/plain' } })
        ).text();
        return { me, echo, getToken: typeof w.session.getToken, events: w.events, heard: w.heard };
      });
      expect(result.me).toMatchObject({ ok: true });
      expect(result.echo).toBe('echo:sealed');
      expect(result.getToken).toBe('undefined');
      expect(result.events).toEqual([{ type: 'token', expiresAt: expect.any(Number) }]);
      expect(result.heard).toEqual([]);
      const marker = JSON.parse(Buffer.from(state.tokens[0]?.split('.')[1] ?? '', 'base64url').toString()).marker as string;
      const heap = await heapText(page);
      expect(heap).not.toContain(marker);
      expect(heap).not.toContain(state.tokens[0]?.split('.')[1]);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('control: an unsealed session’s token is in the page heap, found by the same search', async () => {
    const { context, page } = await open('/');
    try {
      await start(page);
      await page.evaluate(async () => (await (window as any).session.fetch('/api/me')).json());
      const payload = state.tokens[0]?.split('.')[1] ?? '';
      expect(await heapText(page)).toContain(payload);
    } finally {
      await context.close();
    }
  });
});

/** The page's session, as window.session, on `path` ('/' in-page, '/sealed' sealed). */
async function openWith(path: string, options: Record<string, unknown> = {}) {
  const opened = await open(path);
  await start(opened.page, options);
  return opened;
}

/** What a page can read of a session.fetch answer, or of its rejection. */
const fetchResult = (page: Page, url: string, init: Record<string, unknown> = {}) =>
  page.evaluate(
    async ({ url, init }) => {
      const signal = init.signal === 'aborted' ? AbortSignal.abort() : init.signal === 'later' ? AbortSignal.timeout(200) : undefined;
      try {
        const r: Response = await (window as any).session.fetch(url, { ...init, signal });
        return { url: r.url, redirected: r.redirected, type: r.type, status: r.status, ok: r.ok, body: await r.text() };
      } catch (e: any) {
        // (A DOMException's numeric code is not a TokenSec code.)
        return { rejected: e.name, code: typeof e.code == 'string' ? e.code : undefined };
      }
    },
    { url, init },
  );

describe.each(engines)('the session API in %s', (engine) => {
  useEngine(engine);

  describe.each([
    ['in-page', '/'],
    ['sealed', '/sealed'],
  ])('session.fetch honours fetch’s options (%s)', (_, path) => {
    it('redirect: manual gives the opaque redirect; follow shows redirected and the final url; error rejects as fetch does', async () => {
      const { context, page } = await openWith(path);
      try {
        const to = encodeURIComponent('/plain');
        expect(await fetchResult(page, `/api/redirect?to=${to}`, { redirect: 'manual' })).toEqual({
          url: `${origin}/api/redirect?to=${to}`,
          redirected: false,
          type: 'opaqueredirect',
          status: 0,
          ok: false,
          body: '',
        });
        expect(await fetchResult(page, `/api/redirect?to=${to}`)).toEqual({
          url: `${origin}/plain`,
          redirected: true,
          type: 'basic',
          status: 200,
          ok: true,
          body: '{"plain":true}',
        });
        expect(await fetchResult(page, `/api/redirect?to=${to}`, { redirect: 'error' })).toEqual({ rejected: 'TypeError' });
      } finally {
        await context.close();
      }
    });

    it('mode: no-cors goes out untouched (no handshake, no token) and answers opaque', async () => {
      const { context, page } = await openWith(path, { origins: [origin, otherOrigin] });
      try {
        expect(await fetchResult(page, `${otherOrigin}/echo`, { mode: 'no-cors' })).toEqual({
          url: '',
          redirected: false,
          type: 'opaque',
          status: 0,
          ok: false,
          body: '',
        });
        expect(state.crossOrigin).toEqual([undefined]);
        expect(state.handshakes).toBe(0);
      } finally {
        await context.close();
      }
    });

    it('an already aborted signal sends nothing and runs no handshake; an abort during the call rejects with AbortError', async () => {
      const { context, page } = await openWith(path);
      try {
        expect(await fetchResult(page, '/api/seen', { signal: 'aborted' })).toEqual({ rejected: 'AbortError' });
        await sleep(300);
        expect(state.handshakes).toBe(0);
        expect(state.seen).toEqual([]);
        expect(await fetchResult(page, '/api/slow', { signal: 'later' })).toEqual({ rejected: 'TimeoutError' });
      } finally {
        await context.close();
      }
    });

    it('cache and referrerPolicy reach the request as they would from the page', async () => {
      const { context, page } = await openWith(path);
      try {
        await fetchResult(page, '/api/seen');
        await fetchResult(page, '/api/seen', { cache: 'no-store', referrerPolicy: 'no-referrer' });
        expect(state.seen.map(({ referer, pragma }) => ({ referer, pragma }))).toEqual([
          { referer: `${origin}${path}`, pragma: undefined },
          { referer: undefined, pragma: 'no-cache' },
        ]);
        expect(state.seen[0]?.authorization).toMatch(/^DPoP /);
      } finally {
        await context.close();
      }
    });

    it('an open redirect to another origin cannot set the nonce or cause a retry', async () => {
      const { context, page } = await openWith(path);
      try {
        const to = encodeURIComponent(`${otherOrigin}/nonce-401`);
        expect(await fetchResult(page, `/api/redirect?to=${to}`)).toMatchObject({ status: 401, redirected: true });
        // One request reached the other origin (no retry), without the token (browsers drop Authorization).
        expect(state.crossOrigin).toEqual([undefined]);
        expect(state.handshakes).toBe(1);
        await fetchResult(page, '/api/seen');
        const proof = state.seen[0]?.dpop ?? '';
        const claims = JSON.parse(Buffer.from(proof.split('.')[1] ?? '', 'base64url').toString());
        expect(claims.htu).toBe(`${origin}/api/seen`);
        expect(claims.nonce).toBeUndefined();
      } finally {
        await context.close();
      }
    });

    it('another page holding the session’s Web Lock: fetch fails with ERR_TOKENSEC_TIMEOUT after `timeout`', async () => {
      const { context, page } = await openWith(path, { timeout: 2000, retries: 0 });
      try {
        const squatter = await context.newPage();
        await squatter.goto(`${origin}/plain`);
        await squatter.evaluate((name) => {
          void navigator.locks.request(name, () => new Promise(() => {}));
        }, `tokensec:${origin}/token`);
        expect(await fetchResult(page, '/api/seen')).toEqual({ rejected: 'TokenSecError', code: 'ERR_TOKENSEC_TIMEOUT' });
        expect(state.handshakes).toBe(0);
        expect(state.seen).toEqual([]);
        expect(await page.evaluate(() => (window as any).events)).toEqual([{ type: 'error', code: 'ERR_TOKENSEC_TIMEOUT' }]);
        // clear() ends the wait at once, for every caller.
        const cleared = await page.evaluate(async (name) => {
          const w = window as any;
          const waiting = w.session.fetch('/api/seen').catch((e: any) => e.code);
          // Once the call waits for the lock (not after a fixed time): then clear().
          while (!(await navigator.locks.query()).pending?.some((lock) => lock.name === name)) await new Promise((r) => setTimeout(r, 10));
          w.session.clear();
          return waiting;
        }, `tokensec:${origin}/token`);
        expect(cleared).toBe('ERR_TOKENSEC_ABORTED');
        expect(state.handshakes).toBe(0);
      } finally {
        await context.close();
      }
    });

    it('another page of the origin can neither inject a token through the channel nor read one off it', async () => {
      const { context, page } = await openWith(path);
      try {
        const attacker = await context.newPage();
        await attacker.goto(`${origin}/plain`);
        const channel = `tokensec:${origin}/token`;
        // A forged token, in the message shape TokenSec 3.0 used and in others.
        await attacker.evaluate((name) => {
          const w = window as any;
          w.heard = [];
          w.channel = new BroadcastChannel(name);
          w.channel.onmessage = (e: MessageEvent) => w.heard.push(e.data);
          for (const message of [['token', Date.now() + 1e9, 'forged.token.x'], ['token', 0, 'forged.token.x'], 'forged.token.x'])
            w.channel.postMessage(message);
        }, channel);
        await sleep(100);
        await fetchResult(page, '/api/seen');
        expect(state.seen.map((s) => s.authorization)).toEqual([`DPoP ${state.tokens[0]}`]);
        // A `clear` logs the tab out (as logout in another tab does); the next token is not posted.
        await attacker.evaluate(() => (window as any).channel.postMessage(['clear']));
        await page.waitForFunction(() => (window as any).session.state === 'none');
        await fetchResult(page, '/api/seen');
        expect(state.seen.map((s) => s.authorization)).toEqual([`DPoP ${state.tokens[0]}`, `DPoP ${state.tokens[1]}`]);
        await sleep(100);
        expect(await attacker.evaluate(() => (window as any).heard)).toEqual([]);
      } finally {
        await context.close();
      }
    });

    it('state: none → token → none (clear) → refused (403) → token, with a state event for each change, and expiresAt', async () => {
      const { context, page } = await openWith(path);
      try {
        const read = () => page.evaluate(() => ({ state: (window as any).session.state, expiresAt: (window as any).session.expiresAt }));
        expect(await read()).toEqual({ state: 'none', expiresAt: 0 });
        await fetchResult(page, '/api/seen');
        const first = await read();
        const tokenEvent = await page.evaluate(() => (window as any).events[0]);
        expect(first).toEqual({ state: 'token', expiresAt: tokenEvent.expiresAt });
        await page.evaluate(() => (window as any).session.clear());
        await page.waitForFunction(() => (window as any).session.state === 'none');
        // A 503 (network trouble) says nothing about the user: no state change.
        state.refuse = [503, 403];
        await start(page, { retries: 0 });
        expect(await fetchResult(page, '/api/seen')).toMatchObject({ code: 'ERR_TOKENSEC_HTTP_STATUS' });
        expect(await read()).toEqual({ state: 'none', expiresAt: 0 });
        expect(await fetchResult(page, '/api/seen')).toMatchObject({ code: 'ERR_TOKENSEC_HTTP_STATUS' });
        await page.waitForFunction(() => (window as any).session.state === 'refused');
        await fetchResult(page, '/api/seen');
        await page.waitForFunction(() => (window as any).session.state === 'token');
        expect(await page.evaluate(() => (window as any).states)).toEqual([
          { state: 'refused', expiresAt: 0, code: 'ERR_TOKENSEC_HTTP_STATUS', status: 403 },
          { state: 'token', expiresAt: (await read()).expiresAt },
        ]);
      } finally {
        await context.close();
      }
    });
  });
});
