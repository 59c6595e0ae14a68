/**
 * The URL a proof's htu must name: `origin` (one or several) + the request path, `url` when given,
 * else the request's protocol and Host (with one production warning). A mismatch names the URL
 * the server expected. The `DPoP` scheme is case-insensitive (RFC 9110 §11.1). Every refusal
 * carries `TokenSec-Error: <code>`, through Express's default handler and errorHandler().
 */
import express from 'express';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec, { type DpopOptions } from '../../../../src/index.js';
import { listen } from '../../../support/helpers.js';
import { joseProof, proofKey, sha256, type ProofKey } from '../../../support/proofs.js';

const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

let key: ProofKey;
let token: string;
beforeAll(async () => {
  key = await proofKey();
  token = await calculateJwkThumbprint(key.jwk); // this test's "token" names its key: verifyToken below reads it so
});
const verifyToken = (t: string) => ({ sub: 'alice', cnf: { jkt: t } });

async function api(options: Omit<DpopOptions<express.Request>, 'verifyToken'>, errors: 'default' | 'errorHandler' = 'errorHandler') {
  const a = express();
  a.get('/api/me', tokenSec.dpop({ verifyToken, ...options }), (_req, res) => res.json({ ok: true }));
  if (errors === 'errorHandler') a.use(tokenSec.errorHandler());
  const server = await listen(a);
  servers.push(server);
  return server.origin;
}

async function call(origin: string, htu: string, headers: Record<string, string> = {}, scheme = 'DPoP ') {
  const proof = await joseProof(key, { htm: 'GET', htu, ath: await sha256(token) });
  const response = await fetch(`${origin}/api/me`, { headers: { authorization: `${scheme}${token}`, dpop: proof, ...headers } });
  const text = await response.text();
  return {
    status: response.status,
    code: response.headers.get('tokensec-error'),
    message: response.status === 200 ? undefined : (JSON.parse(text) as { message?: string }).message,
    challenge: response.headers.get('www-authenticate'),
  };
}

describe('origin', () => {
  it('htu = origin + path, whatever Host says; a Host-based htu is refused naming the URL expected', async () => {
    const origin = await api({ origin: 'https://api.example:8443' });
    expect(await call(origin, 'https://api.example:8443/api/me', { host: 'upstream:3000' })).toMatchObject({ status: 200 });
    const refused = await call(origin, `${origin}/api/me`);
    expect(refused).toMatchObject({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
    expect(refused.message).toBe(
      'Invalid DPoP proof: htu must be https://api.example:8443/api/me, the URL this server expects for this request (behind a proxy, set the "origin" option).',
    );
    // The proof's own URL is not echoed back.
    expect(refused.message).not.toContain('127.0.0.1');
    expect(refused.challenge).toContain('error_description="Invalid DPoP proof: htu must be https://api.example:8443/api/me');
  });

  it('several origins: the one the proof names, if listed; otherwise refused naming the first', async () => {
    const origin = await api({ origin: ['https://app.example', 'https://www.app.example'] });
    expect(await call(origin, 'https://www.app.example/api/me')).toMatchObject({ status: 200 });
    expect(await call(origin, 'https://app.example/api/me')).toMatchObject({ status: 200 });
    expect(await call(origin, 'https://evil.example/api/me')).toMatchObject({
      status: 401,
      message: expect.stringContaining('htu must be https://app.example/api/me,'),
    });
  });

  it('url (a function) wins over origin', async () => {
    const origin = await api({ origin: 'https://app.example', url: (req) => `https://other.example/v1${req.originalUrl}` });
    expect(await call(origin, 'https://other.example/v1/api/me')).toMatchObject({ status: 200 });
    expect(await call(origin, 'https://app.example/api/me')).toMatchObject({ status: 401 });
  });

  it.each([
    ['https://app.example/api', /option "origin" must be an origin such as "https:\/\/app.example"/],
    ['ftp://app.example', /option "origin" must be an origin/],
    ['app.example', /option "origin" must be an origin/],
    ['https://app.example?', /option "origin" must be an origin/],
    ['https://user@app.example', /option "origin" must be an origin/],
    [[], /option "origin" must be an origin such as "https:\/\/app.example", or a non-empty array of them/],
    [['https://app.example', 42], /option "origin" must be an origin/],
  ])('origin %j is refused at startup', (origin, message) => {
    expect(() => tokenSec.dpop({ verifyToken, origin: origin as never })).toThrow(message);
    expect(() => tokenSec.handshake({ payload: 'x', dpop: { origin: origin as never } })).toThrow(
      new RegExp(message.source.replace('option "origin"', 'option "dpop.origin"')),
    );
  });

  it('an origin is taken as the URL standard writes it: case, trailing slash, default port', async () => {
    for (const given of ['https://App.example/', 'https://app.example:443']) {
      const origin = await api({ origin: given });
      expect(await call(origin, 'https://app.example/api/me')).toMatchObject({ status: 200 });
    }
  });
});

describe('the DPoP scheme is case-insensitive (RFC 9110 §11.1)', () => {
  it.each(['dpop ', 'DPOP ', 'DPoP  '])('%j', async (scheme) => {
    const origin = await api({ origin: 'https://app.example' });
    expect(await call(origin, 'https://app.example/api/me', {}, scheme)).toMatchObject({ status: 200 });
  });

  it('Bearer is still refused', async () => {
    const origin = await api({ origin: 'https://app.example' });
    expect(await call(origin, 'https://app.example/api/me', {}, 'Bearer ')).toMatchObject({
      status: 401,
      code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN',
    });
  });
});

describe('TokenSec-Error carries the code', () => {
  it("through Express's default error handler (err.headers), with WWW-Authenticate", async () => {
    const origin = await api({ origin: 'https://app.example' }, 'default');
    const response = await fetch(`${origin}/api/me`, { headers: { authorization: `DPoP ${token}` } });
    expect(response.status).toBe(401);
    expect(response.headers.get('tokensec-error')).toBe('ERR_TOKENSEC_DPOP_MISSING_PROOF');
    expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
  });

  it('through errorHandler(): header and JSON { code, message }', async () => {
    const origin = await api({ origin: 'https://app.example' });
    const response = await fetch(`${origin}/api/me`);
    expect(response.headers.get('tokensec-error')).toBe('ERR_TOKENSEC_DPOP_INVALID_TOKEN');
    expect(await response.json()).toEqual({ code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN', message: expect.any(String) });
  });

  it('errorHandler() sets it for a TokenSecError raised anywhere (here by the app), and not for a CSRF error', async () => {
    const { TokenSecError } = await import('../../../../src/index.js');
    const a = express();
    a.get('/ours', (_req, _res, next) => next(new TokenSecError('ERR_TOKENSEC_STORE_UNAVAILABLE', 'down', 503)));
    a.get('/csrf', (_req, _res, next) => next(Object.assign(new Error('invalid csrf token'), { code: 'EBADCSRFTOKEN', status: 403 })));
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const ours = await fetch(`${server.origin}/ours`);
    expect([ours.status, ours.headers.get('tokensec-error')]).toEqual([503, 'ERR_TOKENSEC_STORE_UNAVAILABLE']);
    expect(await ours.json()).toEqual({
      code: 'ERR_TOKENSEC_STORE_UNAVAILABLE',
      message: 'A TokenSec store did not answer in time: try again later.',
    });
    const csrf = await fetch(`${server.origin}/csrf`);
    expect([csrf.status, csrf.headers.get('tokensec-error')]).toEqual([403, null]);
  });
});

describe('no origin and no url in production: refused at creation', () => {
  const production = <T>(run: () => T): T => {
    const before = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    // Production requires a nonce key (nonce.test.ts); this test is about the origin.
    process.env.TOKENSEC_NONCE_KEY = 'a nonce key of at least 32 bytes for the test';
    try {
      return run();
    } finally {
      process.env.NODE_ENV = before;
      delete process.env.TOKENSEC_NONCE_KEY;
    }
  };

  it('dpop(), handshake() and dbsc() throw a TypeError that says what to set; with origin or url they start', () => {
    production(() => {
      expect(() => tokenSec.dpop({ verifyToken })).toThrow(
        /tokenSec\.dpop\(\): option "origin" \(or "url"\) is required when NODE_ENV is production: set "origin" to the origin\(s\) clients address this app at, e\.g\. "https:\/\/app\.example"/,
      );
      expect(() => tokenSec.handshake({ payload: 'x' })).toThrow(
        /tokenSec\.handshake\(\): option "dpop\.origin" \(or "dpop\.url"\) is required/,
      );
      expect(() => tokenSec.handshake({ payload: 'x', dpop: { required: false } })).toThrow(/option "dpop\.origin"/);
      expect(() => tokenSec.dbsc({ secret: 'a'.repeat(32) })).toThrow(
        /tokenSec\.dbsc\(\): option "origin" is required when NODE_ENV is production/,
      );
      expect(() => tokenSec.dpop({ verifyToken, origin: 'https://app.example' })).not.toThrow();
      expect(() => tokenSec.handshake({ payload: 'x', dpop: { url: () => 'https://app.example/token' } })).not.toThrow();
      expect(() => tokenSec.dbsc({ secret: 'a'.repeat(32), origin: 'https://app.example' })).not.toThrow();
    });
    expect(() => tokenSec.dpop({ verifyToken })).not.toThrow();
  });
});
