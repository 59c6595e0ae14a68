/**
 * The handshake's answer is never cached: `Cache-Control: no-store` stays when a later handler sets
 * caching headers.
 */
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import tokenSec from '../../../../src/index.js';
import { handshakeApp, handshakeHeader } from '../../../support/handshake.js';
import { TOKEN } from '../../../support/helpers.js';

const SECRET = 'hardening-secret-0123456789';

const header = (secret: string, method = 'POST', path = '/token') => handshakeHeader(secret, { method, path, algorithm: 'x25519' });

function app(options: Partial<Parameters<typeof tokenSec.handshake>[0]> = {}, after?: express.RequestHandler) {
  const { app: a, errors: seen } = handshakeApp(
    { payload: TOKEN, secret: SECRET, dpop: { required: false }, ...options },
    { mount: 'all', after: after ?? ((_req, res) => res.json({ next: true })) },
  );
  return { app: a, seen };
}

describe('the answer', () => {
  it('keeps Cache-Control: no-store when a later handler (terminate: false) sets caching headers', async () => {
    for (const later of [
      ((_req, res) => res.set('Cache-Control', 'public, max-age=3600').json({ next: true })) as express.RequestHandler,
      ((_req, res) =>
        res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end('x')) as express.RequestHandler,
      ((_req, res) => res.writeHead(200, ['Cache-Control', 'max-age=60']).end('x')) as express.RequestHandler,
    ]) {
      const { app: a } = app({}, later);
      const response = await request(a)
        .post('/token')
        .set('x-tokensec-handshake', (await header(SECRET)).value)
        .expect(200);
      expect(response.headers['cache-control']).toBe('no-store');
      expect(response.headers['x-tokensec-handshake']).toBeDefined();
    }
  });
});
