/**
 * Threat table, "holder of a copied access token": after the handshake, apps send the token as a
 * plain bearer. Whoever copies it from a log (a proxy, an APM trace) can call the API with it.
 */
import express from 'express';
import { SignJWT, jwtVerify } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { handshake } from '../../client/index.js';
import tokenSec from '../../src/index.js';
import { listen } from '../support/helpers.js';

const SECRET = 'bearer-replay-secret-0123456789';
const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the demo!');
let server: Awaited<ReturnType<typeof listen>>;
const log: string[] = [];

beforeAll(async () => {
  const app = express();
  app.post(
    '/token',
    tokenSec.handshake({
      secret: SECRET,
      terminate: true,
      payload: () => new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey),
    }),
  );
  app.get('/api/me', async (req, res) => {
    log.push(`${req.method} ${req.url} authorization=${req.get('authorization')}`); // an access log that keeps headers
    try {
      const { payload } = await jwtVerify((req.get('authorization') ?? '').replace(/^Bearer /, ''), signingKey);
      res.json({ sub: payload.sub });
    } catch {
      res.status(401).end();
    }
  });
  server = await listen(app);
});
afterAll(() => server.close());

it('today: a token copied from an access log works as a bearer from anywhere', async () => {
  const token = await handshake({ uri: `${server.origin}/token`, secret: SECRET });
  await fetch(`${server.origin}/api/me`, { headers: { authorization: `Bearer ${token}` } });
  const copied = /authorization=Bearer (\S+)/.exec(log.at(-1) ?? '')?.[1];
  expect(copied).toBe(token);
  const replay = await fetch(`${server.origin}/api/me`, { headers: { authorization: `Bearer ${copied}` } });
  expect(replay.status).toBe(200);
  expect(await replay.json()).toEqual({ sub: 'alice' });
});
