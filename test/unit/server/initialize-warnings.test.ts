/**
 * initialize() mounted where it cannot work says so, once per process, naming the fix: no CSRF
 * middleware before it (`TOKENSEC_NO_CSRF_MIDDLEWARE`), or a CSRF middleware that needs a session
 * and finds none (`TOKENSEC_NO_SESSION`). The page is still served (no 500 from inside initialize).
 * A file of its own: each warning is raised once per process.
 */
import { csrfSync } from 'csrf-sync';
import express from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import tokenSec from '../../../src/index.js';

let warnings: (Error & { code?: string })[] = [];
const record = (warning: Error) => warnings.push(warning);
beforeEach(() => {
  warnings = [];
  process.on('warning', record);
});
afterEach(() => {
  process.off('warning', record);
});
const nextTick = () => new Promise((resolve) => setImmediate(resolve));

describe('initialize() warns once, naming the fix', () => {
  it('no CSRF middleware ran before it: TOKENSEC_NO_CSRF_MIDDLEWARE, once for two pages', async () => {
    const a = express();
    a.use(tokenSec.initialize({ cookie: true }));
    a.get('/', (_req, res) => res.send('<!doctype html><title>page</title>'));
    await request(a).get('/').expect(200);
    await request(a).get('/').expect(200);
    await nextTick();
    expect(warnings.map((w) => w.code)).toEqual(['TOKENSEC_NO_CSRF_MIDDLEWARE']);
    expect(warnings[0]?.message).toMatch(
      /ERR_TOKENSEC_NO_SECRET\. Mount csrf-sync, csrf-csrf or csurf \(after the session middleware\) before/,
    );
  });

  it('csrf-sync without a session middleware: the page is served (no 500), and TOKENSEC_NO_SESSION says to mount express-session', async () => {
    const a = express();
    a.use(csrfSync().csrfSynchronisedProtection);
    a.use(tokenSec.initialize({ cookie: true }));
    a.get('/', (_req, res) => res.send('<!doctype html><title>page</title>'));
    const page = await request(a).get('/').expect(200);
    expect(page.headers['set-cookie']).toBeUndefined();
    await request(a).get('/').expect(200);
    await nextTick();
    expect(warnings.map((w) => w.code)).toEqual(['TOKENSEC_NO_SESSION']);
    expect(warnings[0]?.message).toMatch(/Mount express-session before the CSRF middleware and tokenSec\.initialize\(\)/);
  });

  it('req.csrfToken() throws for another reason: TOKENSEC_CSRF_TOKEN_FAILED with its name and code, never its message; the page is served', async () => {
    const a = express();
    a.use((req, _res, next) => {
      (req as unknown as { session: object }).session = {};
      (req as unknown as { csrfToken: () => string }).csrfToken = () => {
        throw Object.assign(new Error('a message that may hold a secret'), { code: 'ECSRFBROKEN' });
      };
      next();
    });
    a.use(tokenSec.initialize({ cookie: true }));
    a.get('/', (_req, res) => res.send('<!doctype html><title>page</title>'));
    await request(a).get('/').expect(200);
    await nextTick();
    expect(warnings.map((w) => w.code)).toEqual(['TOKENSEC_CSRF_TOKEN_FAILED']);
    expect(warnings[0]?.message).toContain('(Error ECSRFBROKEN)');
    expect(warnings[0]?.message).not.toContain('secret');
  });
});
