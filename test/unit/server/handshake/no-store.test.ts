/**
 * The handshake's answer is never cached: `Cache-Control: no-store` stays when a later handler sets
 * caching headers.
 */
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { plainHandshakeApp as app, PLAIN_SECRET as SECRET, x25519Header as header } from '../../../support/handshake.js';

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
