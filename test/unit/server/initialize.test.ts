import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import tokenSec, { initialize } from '../../../src/index.js';
import { holdsCookie } from '../../../src/server/initialize.js';

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
