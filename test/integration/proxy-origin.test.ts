/**
 * Behind a real nginx with the common `proxy_set_header Host $host` on a port other than 443:
 * nginx drops the port from Host, so a URL built from Host is not the one the browser addressed.
 * With `origin` set the handshake and the API call work; without it the refusal names the URL
 * the server expected and the option that fixes it.
 */
import https from 'node:https';
import express from 'express';
import session from 'express-session';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDpopProof, getDpopKey } from '../../client/dpop.js';
import tokenSec, { type HandshakeMiddleware } from '../../src/index.js';
import { listen, signedHandshake, defined } from '../support/helpers.js';
import { currentNonce } from '../support/proofs.js';
import { startNginx, type NginxProxy } from '../support/nginx.js';

const NAME = 'app.tokensec.test';
const SECRET = 'proxy-origin-secret-0123456789';
let nginx: NginxProxy;
let app: Awaited<ReturnType<typeof listen>>;
const routes: { withOrigin?: HandshakeMiddleware; withoutOrigin?: HandshakeMiddleware; api?: express.RequestHandler } = {};

beforeAll(async () => {
  const a = express();
  a.set('trust proxy', 'loopback'); // X-Forwarded-Proto from nginx: the request was HTTPS
  a.use(session({ secret: 'session secret for tests', resave: false, saveUninitialized: true }));
  // The routes are made once nginx's port (part of the origin) is known.
  a.post('/token', (req, res, next) => defined(routes.withOrigin, 'route')(req, res, next));
  a.post('/token-host', (req, res, next) => defined(routes.withoutOrigin, 'route')(req, res, next));
  a.get(
    '/api/me',
    (req, res, next) => defined(routes.api, 'route')(req, res, next),
    (req, res) => res.json({ jkt: (req as { tokenSec?: { jkt: string } }).tokenSec?.jkt }),
  );
  a.use(tokenSec.errorHandler());
  app = await listen(a);
  nginx = await startNginx({ serverName: NAME, upstreamPort: Number(new URL(app.origin).port), hostHeader: '$host' });
  routes.withOrigin = tokenSec.handshake({
    secret: SECRET,
    terminate: true,
    payload: (_req, _res, { jkt }) => `token-for-${jkt}`,
    dpop: { origin: nginx.origin },
  });
  routes.withoutOrigin = tokenSec.handshake({ secret: SECRET, terminate: true, payload: 'x', dpop: { sessionKey: false } });
  routes.api = tokenSec.dpop({
    origin: nginx.origin,
    verifyToken: (token) => ({ cnf: { jkt: token.slice('token-for-'.length) } }),
  }) as express.RequestHandler;
});
afterAll(async () => {
  await nginx?.stop();
  await app?.close();
});

/** A request through nginx, addressed as the browser would: https://app.tokensec.test:<port> (self-signed certificate). */
function throughNginx(method: string, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const request = https.request(
      {
        host: '127.0.0.1',
        port: nginx.port,
        servername: NAME,
        rejectUnauthorized: false,
        method,
        path,
        headers: { ...headers, host: `${NAME}:${nginx.port}` },
      },
      (response) => {
        let body = '';
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      },
    );
    request.on('error', reject);
    request.end();
  });
}

describe('nginx with proxy_set_header Host $host on a non-443 port', () => {
  it('origin set: the handshake and a DPoP API call work', async () => {
    expect(nginx.origin).toMatch(/^https:\/\/app\.tokensec\.test:\d+$/);
    const url = `${nginx.origin}/token`;
    const first = await throughNginx('POST', '/token', (await signedHandshake(url, SECRET)).headers);
    expect(first.status).toBe(200);
    const key = await getDpopKey();
    const token = `token-for-${key.thumbprint}`;
    const proof = await createDpopProof({ method: 'GET', url: `${nginx.origin}/api/me`, key, accessToken: token, nonce: currentNonce() });
    const api = await throughNginx('GET', '/api/me', { authorization: `DPoP ${token}`, dpop: proof });
    expect([api.status, JSON.parse(api.body)]).toEqual([200, { jkt: key.thumbprint }]);
  });

  it('origin not set: 401 whose message names the URL the server expected and the fix', async () => {
    const url = `${nginx.origin}/token-host`;
    const answer = await throughNginx('POST', '/token-host', (await signedHandshake(url, SECRET)).headers);
    expect(answer.status).toBe(401);
    expect(answer.headers['tokensec-error']).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
    expect(JSON.parse(answer.body)).toEqual({
      code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF',
      message: `Invalid DPoP proof: htu must be https://${NAME}/token-host, the URL this server expects for this request (behind a proxy, set the "origin" option).`,
    });
  });
});
