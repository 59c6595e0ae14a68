/**
 * Server nonces on by default (4.0): the key every process agrees on (TOKENSEC_NONCE_KEY, required
 * in production), a nonce on every answer of the handshake and of dpop(), one key for both in a
 * process, and the events operators see for a stale nonce and a full binding store.
 */
import express from 'express';
import session from 'express-session';
import { SignJWT, calculateJwkThumbprint, jwtVerify } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import tokenSec, { memoryStore, type DpopEvent, type HandshakeEvent } from '../../../../src/index.js';
import { DEFAULT_NONCE_WINDOW, NONCE_KEY_ENV, nonceSource } from '../../../../src/server/dpop/nonce.js';
import { fakeClock } from '../../../support/clock.js';
import { listen, signedHandshake } from '../../../support/helpers.js';
import { joseProof, proofKey, sha256 } from '../../../support/proofs.js';

const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the test!');
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;
const SECRET = 'nonce-test-secret-0123456789';
const KEY = 'a shared nonce key of at least 32 bytes';

/** Runs `fn` with these environment variables, then puts them back. */
function withEnv<T>(env: Record<string, string | undefined>, fn: () => T): T {
  const before = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  const set = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  set(env);
  try {
    return fn();
  } finally {
    set(before);
  }
}

afterEach(() => vi.useRealTimers());

describe('the nonce key', () => {
  it('production without TOKENSEC_NONCE_KEY or nonce.key: dpop() and the handshake refuse to start, saying what to set', () => {
    withEnv({ NODE_ENV: 'production', [NONCE_KEY_ENV]: undefined }, () => {
      const message = /server nonces are on by default .* set the environment variable TOKENSEC_NONCE_KEY .* or pass option "nonce\.key"/;
      expect(() => tokenSec.dpop({ verifyToken, origin: 'https://app.example' })).toThrow(message);
      expect(() => tokenSec.handshake({ payload: 'x', dpop: { origin: 'https://app.example' } })).toThrow(/option "dpop\.nonce\.key"/);
      // Set either way, or nonces off: it starts.
      expect(() => tokenSec.dpop({ verifyToken, origin: 'https://app.example', nonce: { key: KEY } })).not.toThrow();
      expect(() => tokenSec.dpop({ verifyToken, origin: 'https://app.example', nonce: false })).not.toThrow();
      withEnv({ [NONCE_KEY_ENV]: KEY }, () => expect(() => tokenSec.dpop({ verifyToken, origin: 'https://app.example' })).not.toThrow());
      withEnv({ [NONCE_KEY_ENV]: 'too short' }, () =>
        expect(() => tokenSec.dpop({ verifyToken, origin: 'https://app.example' })).toThrow(
          /environment variable TOKENSEC_NONCE_KEY must be at least 32 bytes, got 9/,
        ),
      );
    });
  });

  it('TOKENSEC_NONCE_KEY: two processes (two sources made from the environment) accept each other’s nonces; the default window is 30 s', () => {
    const clock = fakeClock(1_800_000_000_000);
    const [first, second] = withEnv({ [NONCE_KEY_ENV]: KEY }, () => [nonceSource(), nonceSource()]);
    const stranger = withEnv({ [NONCE_KEY_ENV]: 'another nonce key of at least 32 bytes' }, () => nonceSource());
    expect(DEFAULT_NONCE_WINDOW).toBe(30);
    const issued = first!.current();
    expect([second!.problem(issued), stranger.problem(issued)]).toEqual([undefined, 'missing']);
    clock.advance(30_000);
    expect(second!.problem(issued)).toBeUndefined(); // the previous window
    clock.advance(30_000);
    expect(second!.problem(issued)).toBe('stale');
  });
});

describe('a nonce on every answer', () => {
  it('the handshake’s and dpop()’s, success and refusal alike; the handshake’s nonce is good at dpop() in the same process', async () => {
    const a = express();
    a.post(
      '/token',
      tokenSec.handshake({
        secret: SECRET,
        terminate: true,
        dpop: { sessionKey: false },
        payload: (_req, _res, { jkt }) =>
          new SignJWT({ sub: 'alice', cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey),
      }),
    );
    a.get('/api/me', tokenSec.dpop({ verifyToken }), (_req, res) => res.json({ ok: true }));
    // An error handler that copies nothing: the nonce is on the response already.
    a.use((err: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) =>
      res.status(err.status ?? 500).end(),
    );
    const server = await listen(a);
    try {
      const refused = await fetch(`${server.origin}/token`, { method: 'POST', headers: { 'x-tokensec-handshake': 'garbage' } });
      expect(refused.status).toBe(400);
      expect(refused.headers.get('dpop-nonce')).toMatch(/^[0-9a-z]+\.[\w-]{43}$/);
      const { headers } = await signedHandshake(`${server.origin}/token`, SECRET);
      const answered = await fetch(`${server.origin}/token`, { method: 'POST', headers });
      expect(answered.status).toBe(200);
      const nonce = answered.headers.get('dpop-nonce') ?? '';
      const key = await proofKey();
      const token = await new SignJWT({ cnf: { jkt: await calculateJwkThumbprint(key.jwk) } })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('5m')
        .sign(signingKey);
      const call = async (claims: { nonce?: string | undefined }) => {
        const url = `${server.origin}/api/me`;
        const proof = await joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token), ...claims });
        return fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      };
      const withNone = await call({ nonce: undefined });
      expect([withNone.status, withNone.headers.get('dpop-nonce')]).toEqual([401, nonce]);
      const ok = await call({ nonce });
      expect([ok.status, ok.headers.get('dpop-nonce')]).toEqual([200, nonce]);
    } finally {
      await server.close();
    }
  });
});

describe('events operators see before users do', () => {
  it('dpop(): a stale nonce is refused with its own code, NONCE_STALE, apart from a missing one', async () => {
    const clock = fakeClock(Date.now());
    const events: DpopEvent[] = [];
    const a = express();
    a.get('/api/me', tokenSec.dpop({ verifyToken, onEvent: (e) => events.push(e) }), (_req, res) => res.json({ ok: true }));
    a.use((err: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) =>
      res.status(err.status ?? 500).end(),
    );
    const server = await listen(a);
    try {
      const key = await proofKey();
      const token = await new SignJWT({ cnf: { jkt: await calculateJwkThumbprint(key.jwk) } })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('5m')
        .sign(signingKey);
      const url = `${server.origin}/api/me`;
      const call = async (nonce?: string) =>
        fetch(url, {
          headers: {
            authorization: `DPoP ${token}`,
            dpop: await joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token), nonce }),
          },
        });
      const first = await call();
      const nonce = first.headers.get('dpop-nonce') ?? '';
      expect((await call(nonce)).status).toBe(200);
      clock.advance(61_000);
      expect((await call(nonce)).status).toBe(401);
      expect(events.map(({ outcome, status, code }) => [outcome, status, code])).toEqual([
        ['refused', 401, 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED'],
        ['accepted', 200, undefined],
        ['refused', 401, 'ERR_TOKENSEC_DPOP_NONCE_STALE'],
      ]);
    } finally {
      await server.close();
    }
  });

  it('the handshake: a full binding store fails with its own code, BINDING_STORE_FULL, not the replay store’s', async () => {
    const events: HandshakeEvent[] = [];
    const a = express();
    a.use(session({ secret: 'session secret for tests', resave: false, saveUninitialized: true }));
    a.post(
      '/token',
      tokenSec.handshake({
        secret: SECRET,
        terminate: true,
        payload: 'token',
        dpop: { bindingStore: memoryStore({ max: 1 }) },
        onEvent: (e) => events.push(e),
      }),
    );
    a.use((err: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) =>
      res.status(err.status ?? 500).end(),
    );
    const server = await listen(a);
    try {
      const handshake = async () => {
        const { headers } = await signedHandshake(`${server.origin}/token`, SECRET, { tsb: true });
        return (await fetch(`${server.origin}/token`, { method: 'POST', headers })).status;
      };
      // Two sessions (no cookie kept): the first takes the store's one place.
      expect([await handshake(), await handshake()]).toEqual([200, 503]);
      expect(events.map(({ outcome, status, code }) => [outcome, status, code])).toEqual([
        ['answered', 200, undefined],
        ['failed', 503, 'ERR_TOKENSEC_BINDING_STORE_FULL'],
      ]);
    } finally {
      await server.close();
    }
  });
});
