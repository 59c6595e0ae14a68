import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import session from 'express-session';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import tokenSec, { initialize } from '../../../src/index.js';
import { holdsCookie } from '../../../src/server/initialize.js';
import { listen } from '../../support/helpers.js';

function app(options: Parameters<typeof initialize>[0], { csrf = true, trustProxy = false } = {}) {
  const a = express();
  if (trustProxy) a.set('trust proxy', true);
  a.use(cookieParser());
  if (csrf) a.use(csurf({ cookie: true }));
  a.use(tokenSec.initialize(options));
  a.get('/', (_req, res) => res.send('page'));
  return a;
}

const tokensecCookie = (res: request.Response) =>
  ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('tokensec='));

describe('initialize', () => {
  it('with cookie: true, sets the CSRF token in a script-readable SameSite=Strict cookie on /', async () => {
    const res = await request(app({ cookie: true }))
      .get('/')
      .expect(200, 'page');
    const cookie = tokensecCookie(res)!;
    expect(cookie).toMatch(/^tokensec=[^;]+; Path=\/; SameSite=Strict$/);
    expect(cookie).not.toMatch(/HttpOnly/i);
    // csurf's own secret cookie is kept alongside
    expect(res.headers['set-cookie']).toEqual(expect.arrayContaining([expect.stringMatching(/^_csrf=/)]));
  });

  it('the cookie holds a token csurf accepts', async () => {
    const a = app({ cookie: true });
    a.post('/check', (_req, res) => res.send('accepted'));
    const page = await request(a).get('/');
    const cookies = ([] as string[]).concat(page.headers['set-cookie'] ?? []).map((c) => c.split(';', 1).join(''));
    const token = decodeURIComponent(tokensecCookie(page)!.split(';', 1).join('').slice('tokensec='.length));
    await request(a).post('/check').set('cookie', cookies.join('; ')).set('x-csrf-token', token).expect(200, 'accepted');
    await request(a).post('/check').set('cookie', cookies.join('; ')).set('x-csrf-token', `${token}x`).expect(403);
  });

  it('marks the cookie Secure when the request came over HTTPS (req.secure)', async () => {
    const res = await request(app({ cookie: true }, { trustProxy: true }))
      .get('/')
      .set('x-forwarded-proto', 'https');
    expect(tokensecCookie(res)).toMatch(/; Secure$/);
  });

  it('merges a cookie object over the defaults', async () => {
    const res = await request(
      app({ cookie: { name: 'csrf-for-tokensec', path: '/app', sameSite: 'lax', secure: true, domain: 'example.test' } }),
    ).get('/');
    const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('csrf-for-tokensec='));
    expect(cookie).toMatch(/^csrf-for-tokensec=[^;]+; Path=\/app; Domain=example\.test; SameSite=Lax; Secure$/);
  });

  it('does nothing without cookie, or without a CSRF middleware', async () => {
    expect(tokensecCookie(await request(app({})).get('/').expect(200))).toBeUndefined();
    expect(
      tokensecCookie(
        await request(app({ cookie: false }))
          .get('/')
          .expect(200),
      ),
    ).toBeUndefined();
    expect(
      tokensecCookie(
        await request(app({ cookie: true }, { csrf: false }))
          .get('/')
          .expect(200, 'page'),
      ),
    ).toBeUndefined();
  });
});

describe('initialize() sets its cookie only when the browser does not hold it', () => {
  const app = (token: string) => {
    const a = express();
    a.use((req, _res, next) => {
      (req as unknown as { csrfToken: () => string }).csrfToken = () => token;
      next();
    });
    a.use(tokenSec.initialize({ cookie: true }));
    a.get('/', (_req, res) => res.send('page'));
    return a;
  };
  const TOKEN_A = 'a+b/c=d-0123456789abcdef';
  const held = `tokensec=${encodeURIComponent(TOKEN_A)}`;

  it.each([
    ['no cookie', undefined, true],
    ['the same cookie', held, false],
    ['the same cookie among others', `sid=1; ${held}; x=y`, false],
    ['another value (a new token)', 'tokensec=old', true],
    ['the value not URI-encoded', `tokensec=${TOKEN_A}`, true],
    ['two cookies of that name (another path)', `${held}; tokensec=old`, true],
  ])('%s: set %s', async (_, cookie, set) => {
    const req = request(app(TOKEN_A)).get('/');
    const res = await (cookie === undefined ? req : req.set('cookie', cookie)).expect(200);
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    expect(cookies).toEqual(set ? [`${held}; Path=/; SameSite=Strict`] : []);
  });

  it('holdsCookie reads names exactly', () => {
    expect(holdsCookie('xtokensec=v', 'tokensec', 'v')).toBe(false);
    expect(holdsCookie(' tokensec = v ', 'tokensec', 'v')).toBe(true);
    expect(holdsCookie('tokensec', 'tokensec', 'v')).toBe(false);
  });
});

describe('initialize() asks for a token only where the page needs one', () => {
  /** README's order: session (saveUninitialized: false), csrf-sync, initialize; a page, an asset, an API read, a login that regenerates. */
  function readmeApp(hold?: Promise<void>) {
    const a = express();
    // Holds the asset request before it reaches the session middleware: it then runs with the cookie it was sent with.
    a.use(async (req, _res, next) => {
      if (hold && req.path === '/favicon.ico') await hold;
      next();
    });
    a.use(session({ secret: 'initialize test session secret', resave: false, saveUninitialized: false }));
    a.use(csrfSync().csrfSynchronisedProtection);
    a.use(tokenSec.initialize({ cookie: true }));
    a.get('/', (_req, res) => res.send('<!doctype html><title>page</title>'));
    a.get('/favicon.ico', (_req, res) => res.type('image/x-icon').send(Buffer.from([0, 0, 1, 0])));
    a.get('/app.css', (_req, res) => res.type('css').send('body {}'));
    a.get('/api/me', (req, res) => res.json({ user: (req.session as unknown as { user?: string }).user ?? null }));
    a.post('/login', (req, res, next) => {
      req.session.regenerate((err) => {
        if (err) return next(err);
        (req.session as unknown as { user: string }).user = 'alice';
        res.json({ ok: true });
      });
    });
    return a;
  }
  const setCookies = (res: Response) => res.headers.getSetCookie().map((c) => c.split('=', 1)[0]);

  it('a page gets the cookie (and its session); an asset, a favicon and an API read get no cookie and no session', async () => {
    const server = await listen(readmeApp());
    try {
      expect(setCookies(await fetch(`${server.origin}/`))).toEqual(['tokensec', 'connect.sid']);
      for (const path of ['/favicon.ico', '/app.css', '/api/me'])
        expect(setCookies(await fetch(`${server.origin}${path}`)), path).toEqual([]);
      // A navigation that answers without a page type (a 304 revalidation, say) still gets it.
      // (fetch() sets Sec-Fetch-Mode itself: supertest sends what a browser's navigation sends.)
      const navigation = await request(server.origin).get('/api/me').set('sec-fetch-mode', 'navigate');
      expect(([] as string[]).concat(navigation.headers['set-cookie'] ?? []).map((c) => c.split('=', 1)[0])).toEqual([
        'tokensec',
        'connect.sid',
      ]);
    } finally {
      await server.close();
    }
  });

  it('a favicon request sent with the pre-login cookie and answered after the login never logs the user out', async () => {
    let release = () => {};
    const hold = new Promise<void>((resolve) => (release = resolve));
    const server = await listen(readmeApp(hold));
    const jar = new Map<string, string>();
    const keep = (res: Response) => {
      for (const set of res.headers.getSetCookie()) {
        const pair = set.split(';', 1)[0] ?? '';
        jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
      }
      return res;
    };
    const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    try {
      keep(await fetch(`${server.origin}/`));
      const preLogin = cookie();
      const favicon = fetch(`${server.origin}/favicon.ico`, { headers: { cookie: preLogin } });
      const login = keep(
        await fetch(`${server.origin}/login`, {
          method: 'POST',
          headers: { cookie: preLogin, 'x-csrf-token': decodeURIComponent(jar.get('tokensec') ?? '') },
        }),
      );
      expect(login.status).toBe(200);
      release();
      keep(await favicon);
      expect(await (await fetch(`${server.origin}/api/me`, { headers: { cookie: cookie() } })).json()).toEqual({ user: 'alice' });
    } finally {
      await server.close();
    }
  });

  it('the cookie is set after the route: a login that regenerates the session answers with the new session’s token', async () => {
    const server = await listen(readmeApp());
    try {
      const page = await fetch(`${server.origin}/`);
      const before = page.headers.getSetCookie().map((c) => c.split(';', 1)[0]);
      const token = (cookies: (string | undefined)[]) =>
        decodeURIComponent(cookies.find((c) => c?.startsWith('tokensec='))?.slice(9) ?? '');
      const login = await fetch(`${server.origin}/login`, {
        method: 'POST',
        headers: { cookie: before.join('; '), 'x-csrf-token': token(before) },
      });
      const after = login.headers.getSetCookie().map((c) => c.split(';', 1)[0]);
      expect(token(after)).not.toBe('');
      expect(token(after)).not.toBe(token(before));
      // The new token is the new session's: a POST with it and the new session cookie passes csrf-sync.
      const sid = after.find((c) => c?.startsWith('connect.sid='))!;
      const check = await fetch(`${server.origin}/login`, { method: 'POST', headers: { cookie: sid, 'x-csrf-token': token(after) } });
      expect(check.status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('a logout that destroys the session: answered, no CSRF cookie (there is no session to take a token from)', async () => {
    const a = readmeApp();
    a.post('/logout-destroy', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
    const server = await listen(a);
    try {
      const page = await fetch(`${server.origin}/`);
      const cookies = page.headers.getSetCookie().map((c) => c.split(';', 1)[0]!);
      const token = decodeURIComponent(cookies.find((c) => c.startsWith('tokensec='))!.slice(9));
      const out = await fetch(`${server.origin}/logout-destroy`, {
        method: 'POST',
        headers: { cookie: cookies.join('; '), 'x-csrf-token': token },
      });
      expect(out.status).toBe(200);
      expect(setCookies(out)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('a route that writes its headers early (res.writeHead) still gets the cookie, with the token saved in the session', async () => {
    const a = express();
    a.use(session({ secret: 'initialize test session secret', resave: false, saveUninitialized: false }));
    a.use(csrfSync().csrfSynchronisedProtection);
    a.use(tokenSec.initialize({ cookie: true }));
    a.get('/stream', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.write('<!doctype html>');
      res.end('<title>streamed</title>');
    });
    a.post('/check', (_req, res) => res.send('accepted'));
    const server = await listen(a);
    try {
      const page = await fetch(`${server.origin}/stream`);
      const cookies = page.headers.getSetCookie().map((c) => c.split(';', 1)[0]!);
      const token = decodeURIComponent(cookies.find((c) => c.startsWith('tokensec='))!.slice(9));
      const check = await fetch(`${server.origin}/check`, {
        method: 'POST',
        headers: { cookie: cookies.join('; '), 'x-csrf-token': token },
      });
      expect(check.status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
