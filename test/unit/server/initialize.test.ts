import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import tokenSec, { initialize } from '../../../src/index.js';

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
