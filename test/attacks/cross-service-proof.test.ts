/**
 * Threat table, "a service that shares the token issuer": a proof and token used at service A
 * are taken (A's logs, A's operator) to service B, which accepts tokens of the same issuer but
 * keeps its own replay store, with `Host: <A>`. Where B builds htu from Host (no `origin`), the
 * proof passes there: the Host-fallback risk. With B's `origin` set, it is refused.
 */
import http from 'node:http';
import express from 'express';
import { SignJWT, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDpopProof, getDpopKey } from '../../client/dpop.js';
import tokenSec from '../../src/index.js';
import { listen } from '../support/helpers.js';
import { currentNonce } from '../support/proofs.js';

const issuerKey = new TextEncoder().encode('one issuer, 32-byte HMAC key ...');
const verifyToken = async (token: string) => (await jwtVerify(token, issuerKey, { issuer: 'https://issuer.example' })).payload;
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

async function service(origin?: (self: string) => string) {
  const routes: { me?: express.RequestHandler } = {};
  const a = express();
  a.get(
    '/api/me',
    (req, res, next) => routes.me?.(req, res, next),
    (_req, res) => res.json({ ok: true }),
  );
  a.use(tokenSec.errorHandler());
  const server = await listen(a);
  servers.push(server);
  // Another service, another process: a replay store of its own (the process-wide default would be shared here).
  routes.me = tokenSec.dpop({
    verifyToken,
    replayStore: tokenSec.memoryStore(),
    ...(origin ? { origin: origin(server.origin) } : {}),
  }) as express.RequestHandler;
  return server.origin;
}

/** GET /api/me at `origin` with a Host header of our choosing (what the attacker controls). */
function get(origin: string, host: string, headers: Record<string, string>) {
  return new Promise<{ status: number; code: string | undefined }>((resolve, reject) => {
    const { hostname, port } = new URL(origin);
    http
      .get({ hostname, port, path: '/api/me', headers: { ...headers, host } }, (response) => {
        response.resume();
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, code: response.headers['tokensec-error'] as string | undefined }),
        );
      })
      .on('error', reject);
  });
}

let a: string;
let headers: Record<string, string>;
beforeAll(async () => {
  a = await service((self) => self);
  const key = await getDpopKey();
  const token = await new SignJWT({ sub: 'alice', cnf: { jkt: key.thumbprint } })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('https://issuer.example')
    .setExpirationTime('5m')
    .sign(issuerKey);
  headers = {
    authorization: `DPoP ${token}`,
    dpop: await createDpopProof({ method: 'GET', url: `${a}/api/me`, key, accessToken: token, nonce: currentNonce() }),
  };
  // The page's own call at A: accepted once, then A's replay store refuses it.
  expect(await get(a, new URL(a).host, headers)).toEqual({ status: 200, code: undefined });
  expect(await get(a, new URL(a).host, headers)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' });
});

describe('a proof used at service A, replayed at service B with Host: A', () => {
  it('B without origin (Host fallback): accepted, the risk the threat table states', async () => {
    const b = await service();
    expect(await get(b, new URL(a).host, headers)).toEqual({ status: 200, code: undefined });
  });

  it('B with its own origin set: refused', async () => {
    const b = await service((self) => self);
    expect(await get(b, new URL(a).host, headers)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
  });
});
