/**
 * Threat table, "a client that chooses Host": without the `origin` option the server builds the
 * URL a proof's `htu` must name from Host. `Host: <host>#`, `<host>?` or `<host>/admin/export?`
 * moves the request's path into the fragment or query, which `htu` normalisation drops, so on
 * 3.1.0 a proof made for `GET /` (or `/admin/export`) was accepted at `GET /api/me` (200). Now a
 * Host that is not `host[:port]` (RFC 9110 §7.2) is refused, 400 ERR_TOKENSEC_BAD_HOST, before
 * any URL is built from it: in dpop(), in the handshake and in dbsc(). Server nonces are off here:
 * the attack is on the URL, and a client that holds a nonce (any attacker can ask for one) is no obstacle.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import express from 'express';
import session from 'express-session';
import { SignJWT, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { createDpopProof, getDpopKey } from '../../client/dpop.js';
import tokenSec from '../../src/index.js';
import { handshakeHeader } from '../support/handshake.js';
import { Client, dbscProof, ecTestKey, registrationProof, registrationRequest, challengeOf } from '../support/dbsc.js';
import { listen } from '../support/helpers.js';

const issuerKey = new TextEncoder().encode('one issuer, 32-byte HMAC key ...');
const verifyToken = async (token: string) => (await jwtVerify(token, issuerKey)).payload;
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** A request with a Host header of the attacker's choosing (fetch would replace it). */
function send(origin: string, method: string, path: string, host: string, headers: Record<string, string>) {
  return new Promise<{ status: number; code: string | undefined }>((resolve, reject) => {
    const { hostname, port } = new URL(origin);
    http
      .request({ hostname, port, method, path, headers: { ...headers, host } }, (response) => {
        response.resume();
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, code: response.headers['tokensec-error'] as string | undefined }),
        );
      })
      .on('error', reject)
      .end();
  });
}

describe('dpop() without origin: a proof made for another path, sent with a Host that ends the authority early', () => {
  it.each([
    ['<host>#', '/', (host: string) => `${host}#`],
    ['<host>?', '/', (host: string) => `${host}?`],
    ['<host>/admin/export?', '/admin/export', (host: string) => `${host}/admin/export?`],
  ])('Host %s with a proof for GET %s at GET /api/me: 400 ERR_TOKENSEC_BAD_HOST (3.1.0: 200)', async (_name, madeFor, hostile) => {
    const a = express();
    a.get('/api/me', tokenSec.dpop({ verifyToken, replayStore: tokenSec.memoryStore(), nonce: false }), (_req, res) =>
      res.json({ ok: true }),
    );
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const host = new URL(server.origin).host;
    const key = await getDpopKey();
    const token = await new SignJWT({ sub: 'alice', cnf: { jkt: key.thumbprint } })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(issuerKey);
    const proofFor = (path: string) => createDpopProof({ method: 'GET', url: `${server.origin}${path}`, key, accessToken: token });
    const authorization = `DPoP ${token}`;
    expect(await send(server.origin, 'GET', '/api/me', hostile(host), { authorization, dpop: await proofFor(madeFor) })).toEqual({
      status: 400,
      code: 'ERR_TOKENSEC_BAD_HOST',
    });
    // The same kind of proof at the URL it names, with the real Host: accepted.
    expect(await send(server.origin, 'GET', '/api/me', host, { authorization, dpop: await proofFor('/api/me') })).toEqual({
      status: 200,
      code: undefined,
    });
  });

  it.each(['user@127.0.0.1', '127.0.0.1 :80', '127.0.0.1:08080', '127.000.000.001', '2130706433', '127.0.0.1.', 'a\\b'])(
    'Host %j: 400 ERR_TOKENSEC_BAD_HOST',
    async (hostile) => {
      const a = express();
      a.get('/api/me', tokenSec.dpop({ verifyToken, nonce: false }), (_req, res) => res.json({ ok: true }));
      a.use(tokenSec.errorHandler());
      const server = await listen(a);
      servers.push(server);
      expect(await send(server.origin, 'GET', '/api/me', hostile, { authorization: 'DPoP x', dpop: 'x.y.z' })).toEqual({
        status: 400,
        code: 'ERR_TOKENSEC_BAD_HOST',
      });
    },
  );
});

describe('the handshake without dpop.origin', () => {
  it('a proof made for POST / with the handshake for POST /token, Host <host>#: 400 ERR_TOKENSEC_BAD_HOST (3.1.0: 200)', async () => {
    const secret = 'a handshake secret of 16+ bytes';
    const a = express();
    a.post('/token', tokenSec.handshake({ payload: 'the token', secret, terminate: true, dpop: { sessionKey: false, nonce: false } }));
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const host = new URL(server.origin).host;
    const key = await getDpopKey();
    const jkt = new Uint8Array(Buffer.from(key.thumbprint, 'base64url'));
    const request = async (htuPath: string) => {
      const { value } = await handshakeHeader(secret, { method: 'POST', path: '/token', jkt });
      const tsh = createHash('sha256').update(value).digest('base64url');
      const proof = await createDpopProof({ method: 'POST', url: `${server.origin}${htuPath}`, key, claims: { tsh } });
      return { 'x-tokensec-handshake': value, dpop: proof };
    };
    expect(await send(server.origin, 'POST', '/token', `${host}#`, await request('/'))).toEqual({
      status: 400,
      code: 'ERR_TOKENSEC_BAD_HOST',
    });
    expect(await send(server.origin, 'POST', '/token', host, await request('/token'))).toEqual({ status: 200, code: undefined });
  });
});

describe('dbsc() without origin', () => {
  it('a refresh with Host <host>#: 400 ERR_TOKENSEC_BAD_HOST before its URLs are built (3.1.0: 200)', async () => {
    const dbsc = tokenSec.dbsc({ secret: 'unit test DBSC secret, 32 bytes or more' });
    const a = express();
    a.use(session({ secret: 'unit session secret', resave: false, saveUninitialized: false }));
    a.use(dbsc.middleware);
    a.post('/login', (req, res, next) => {
      req.session.regenerate(async (error) => {
        if (error) return next(error);
        try {
          res.json({ requested: await dbsc.requestRegistration(req, res) });
        } catch (failure) {
          next(failure);
        }
      });
    });
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const client = new Client(server.origin);
    const { challenge } = registrationRequest((await client.send('POST', '/login')).headers.get('secure-session-registration'));
    const key = ecTestKey();
    const registered = await client.send('POST', '/tokensec/dbsc/registration', {
      'secure-session-response': registrationProof(key, { jti: challenge }),
    });
    expect(registered.status).toBe(200);
    const next = challengeOf(registered);
    const headers = {
      cookie: client.cookie,
      'sec-secure-session-id': next.id,
      'secure-session-response': dbscProof(key, { jti: next.challenge }),
    };
    const host = new URL(server.origin).host;
    expect(await send(server.origin, 'POST', '/tokensec/dbsc/refresh', `${host}#`, headers)).toEqual({
      status: 400,
      code: 'ERR_TOKENSEC_BAD_HOST',
    });
    // Refused before the challenge was used: the same refresh with the real Host succeeds.
    expect(await send(server.origin, 'POST', '/tokensec/dbsc/refresh', host, headers)).toEqual({ status: 200, code: undefined });
  });
});
