/**
 * API-side observability: one event per request through tokenSec.dpop() (the onEvent option and
 * the `tokensec:dpop` diagnostics channel), with outcome, status, code, algorithm, jkt and
 * duration; store failures show with their code; no event holds a token, proof, key or secret.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import http from 'node:http';
import express from 'express';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import tokenSec, { dpopChannel, type AtomicStore, type DpopEvent, type DpopOptions } from '../../../../src/index.js';
import { listen } from '../../../support/helpers.js';
import { joseProof, proofKey, sha256 } from '../../../support/proofs.js';

const NONCE_KEY = 'nonce key for the event tests, 32+ bytes';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

async function app(options: Partial<DpopOptions> = {}) {
  const events: DpopEvent[] = [];
  const a = express();
  a.get(
    '/api/me',
    tokenSec.dpop({
      verifyToken: (token) => JSON.parse(Buffer.from(token, 'base64url').toString()),
      onEvent: (event) => events.push(event),
      ...options,
    }),
    (_req, res) => res.json({ ok: true }),
  );
  a.use(tokenSec.errorHandler());
  const server = await listen(a);
  servers.push(server);
  return { url: `${server.origin}/api/me`, events };
}

async function caller(url: string) {
  const key = await proofKey();
  const jkt = await calculateJwkThumbprint(key.jwk);
  const token = Buffer.from(JSON.stringify({ sub: 'alice', secret: 'token-secret-claim-0123456789', cnf: { jkt } })).toString('base64url');
  const proof = async (nonce?: string) => joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token), ...(nonce ? { nonce } : {}) });
  const send = async (dpop?: string, extra: Record<string, string> = {}) => {
    const response = await fetch(url, { headers: { authorization: `DPoP ${token}`, ...(dpop ? { dpop } : {}), ...extra } });
    return { status: response.status, nonce: response.headers.get('dpop-nonce') ?? undefined };
  };
  return { key, jkt, token, proof, send };
}

describe('dpop() events', () => {
  it('operators see a refused Host: 400 ERR_TOKENSEC_BAD_HOST is an event with its code, before any proof is read', async () => {
    const { url, events } = await app({ nonce: { key: NONCE_KEY } });
    const { port } = new URL(url);
    // fetch cannot send a Host of its own: node:http can.
    const status = await new Promise<number>((resolve, reject) => {
      const request = http.get({ host: '127.0.0.1', port, path: '/api/me', headers: { host: `127.0.0.1:${port}#` } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
    });
    expect(status).toBe(400);
    expect(events).toEqual([expect.objectContaining({ outcome: 'refused', status: 400, code: 'ERR_TOKENSEC_BAD_HOST' })]);
    expect(events[0]?.jkt).toBeUndefined();
  });
  it('accepted, and each kind of refusal, with status, code, algorithm, jkt, a duration and the request id', async () => {
    const { url, events } = await app({ nonce: { key: NONCE_KEY } });
    const { jkt, proof, send } = await caller(url);
    const first = await send(await proof());
    expect(first.status).toBe(401); // no nonce yet
    const withNonce = await proof(first.nonce);
    expect((await send(withNonce, { 'x-request-id': 'req-7' })).status).toBe(200);
    expect((await send(withNonce)).status).toBe(401);
    expect((await fetch(url)).status).toBe(401);
    expect((await send('not.a.proof')).status).toBe(401);
    const duration = expect.any(Number);
    expect(events).toEqual([
      { outcome: 'refused', status: 401, code: 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED', durationMs: duration },
      { outcome: 'accepted', status: 200, algorithm: 'ES256', jkt, durationMs: duration, requestId: 'req-7' },
      { outcome: 'refused', status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF', algorithm: 'ES256', jkt, durationMs: duration },
      { outcome: 'refused', status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN', durationMs: duration },
      { outcome: 'refused', status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF', durationMs: duration },
    ]);
  });

  it('store failures: unavailable (throws, or no answer within storeTimeout, default 1000 ms), full, and a key over its share', async () => {
    const throwing: AtomicStore = {
      addIfAbsent: () => Promise.reject(new Error('connection lost to 10.0.0.7:6379 (password hunter2)')),
      delete: () => undefined,
    };
    const silent: AtomicStore = { addIfAbsent: () => new Promise(() => undefined), delete: () => undefined };
    for (const [replayStore, status, code] of [
      [throwing, 503, 'ERR_TOKENSEC_STORE_UNAVAILABLE'],
      [silent, 503, 'ERR_TOKENSEC_STORE_UNAVAILABLE'],
      [tokenSec.memoryStore({ max: 1 }), 503, 'ERR_TOKENSEC_STORE_FULL'],
      [tokenSec.memoryStore({ max: 10, maxPerOwner: 1 }), 429, 'ERR_TOKENSEC_DPOP_RATE_LIMITED'],
    ] as const) {
      const { url, events } = await app({ replayStore });
      const { jkt, proof, send } = await caller(url);
      const statuses = [(await send(await proof())).status, (await send(await proof())).status];
      const fails = replayStore === throwing || replayStore === silent;
      expect(statuses).toEqual(fails ? [status, status] : [200, status]);
      expect(events.at(-1)).toEqual({
        outcome: status === 503 ? 'failed' : 'refused',
        status,
        code,
        algorithm: 'ES256',
        jkt,
        durationMs: expect.any(Number),
      });
      expect(JSON.stringify(events)).not.toMatch(/hunter2|10\.0\.0\.7/);
    }
  });

  it('the tokensec:dpop channel sees the same events, whether or not onEvent is set', async () => {
    const published: unknown[] = [];
    const listener = (message: unknown) => published.push(message);
    subscribe('tokensec:dpop', listener);
    try {
      const { url, events } = await app();
      const quiet = await app({ onEvent: undefined });
      const one = await caller(url);
      expect((await one.send(await one.proof())).status).toBe(200);
      const two = await caller(quiet.url);
      expect((await two.send(await two.proof())).status).toBe(200);
      expect(published).toEqual([events[0], expect.objectContaining({ outcome: 'accepted', jkt: two.jkt })]);
      expect(dpopChannel.name).toBe('tokensec:dpop');
    } finally {
      unsubscribe('tokensec:dpop', listener);
    }
  });

  it('no event holds the token, a proof, a key (private or public), the nonce key or a nonce', async () => {
    const published: unknown[] = [];
    const listener = (message: unknown) => published.push(message);
    subscribe('tokensec:dpop', listener);
    try {
      const { url, events } = await app({ nonce: { key: NONCE_KEY } });
      const { key, token, proof, send } = await caller(url);
      const sent: string[] = [token];
      const first = await proof();
      sent.push(first);
      const { nonce } = await send(first);
      const good = await proof(nonce);
      sent.push(good, nonce!);
      await send(good);
      await send(good); // replayed
      const { d, x, y } = await exportJWK(key.privateKey);
      const text = JSON.stringify([events, published]);
      expect(events).toHaveLength(3);
      for (const secret of [NONCE_KEY, d!, x!, y!, 'token-secret-claim', ...sent]) expect(text).not.toContain(secret);
      for (const value of sent) for (let i = 0; i + 16 <= value.length; i += 8) expect(text).not.toContain(value.slice(i, i + 16));
    } finally {
      unsubscribe('tokensec:dpop', listener);
    }
  });

  it('a nonce handed out by one app is good at another app that has the same nonce key (two processes behind a load balancer)', async () => {
    const first = await app({ nonce: { key: NONCE_KEY } });
    const second = await app({ nonce: { key: NONCE_KEY } });
    const stranger = await app({ nonce: { key: 'another nonce key, also 32 bytes or more' } });
    const one = await caller(first.url);
    const { nonce } = await one.send(await one.proof());
    expect(nonce).toBeDefined();
    for (const [target, status] of [
      [second, 200],
      [stranger, 401],
    ] as const) {
      const other = await caller(target.url);
      expect((await other.send(await other.proof(nonce))).status).toBe(status);
    }
    expect(stranger.events.at(-1)?.code).toBe('ERR_TOKENSEC_DPOP_NONCE_REQUIRED');
  });

  it('dpop() mounted twice on one route (router and route) records the proof once and passes', async () => {
    const a = express();
    const options = { verifyToken: (token: string) => JSON.parse(Buffer.from(token, 'base64url').toString()) };
    a.use('/api', tokenSec.dpop(options));
    a.get('/api/me', tokenSec.dpop(options), (_req, res) => res.json({ ok: true }));
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const { proof, send } = await caller(`${server.origin}/api/me`);
    const once = await proof();
    expect((await send(once)).status).toBe(200);
    expect((await send(once)).status).toBe(401); // a second request with it is still a replay
  });

  it('a listener that throws does not break the request', async () => {
    const { url } = await app({
      onEvent: () => {
        throw new Error('observer bug');
      },
    });
    const { proof, send } = await caller(url);
    expect((await send(await proof())).status).toBe(200);
  });
});
