/**
 * Observability: one event per handshake (the onEvent option and the `tokensec:handshake`
 * diagnostics channel), with nothing protected in it.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, describe, expect, it } from 'vitest';
import tokenSec, { handshakeChannel, type HandshakeEvent } from '../../../../src/index.js';
import { handshakeApp } from '../../../support/handshake.js';
import { TOKEN, listen, signedHandshake } from '../../../support/helpers.js';

const SECRET = 'observability-secret-0123456789';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

async function app(payload: string | (() => string) = TOKEN, onEvent?: (event: HandshakeEvent) => void) {
  const events: HandshakeEvent[] = [];
  // Mounted for every method, so that a GET reaches it (and is refused).
  const { app: a } = handshakeApp(
    {
      secret: SECRET,
      terminate: true,
      payload,
      onEvent:
        onEvent ??
        ((event) => {
          events.push(event);
        }),
    },
    {
      mount: 'use',
      errors: 'errorHandler',
      routes: (app) => app.get('/api/me', tokenSec.dpop({ verifyToken: () => ({ cnf: { jkt: 'x' } }) }), (_req, res) => res.json({})),
    },
  );
  const server = await listen(a);
  servers.push(server);
  return { origin: server.origin, url: `${server.origin}/token`, events };
}

describe('handshake events', () => {
  it('an answered handshake: outcome, status, algorithm, the verified jkt, a duration, the request id', async () => {
    const { url, events } = await app();
    const { headers, jkt } = await signedHandshake(url, SECRET, { algorithm: 'p256' });
    const res = await fetch(url, { method: 'POST', headers: { ...headers, 'x-request-id': 'req-42' } });
    expect(res.status).toBe(200);
    expect(events).toEqual([
      { outcome: 'answered', status: 200, algorithm: 'p256', jkt, durationMs: expect.any(Number), requestId: 'req-42' },
    ]);
    expect(events[0]?.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('refusals and failures carry their status and code; the channel sees the same events', async () => {
    const published: unknown[] = [];
    const listener = (message: unknown) => published.push(message);
    subscribe('tokensec:handshake', listener);
    try {
      const { url, events } = await app(() => {
        throw new Error('database password is hunter2');
      });
      const wrongSecret = await signedHandshake(url, 'another-secret-0123456789');
      await fetch(url, { method: 'POST', headers: wrongSecret.headers });
      await fetch(url, { method: 'POST', headers: { 'x-tokensec-handshake': 'v3.nonsense' } });
      await fetch(url, { method: 'GET', headers: { 'x-tokensec-handshake': 'v3.nonsense' } });
      const good = await signedHandshake(url, SECRET);
      await fetch(url, { method: 'POST', headers: good.headers });
      expect(events.map(({ outcome, status, code }) => ({ outcome, status, code }))).toEqual([
        { outcome: 'refused', status: 403, code: 'ERR_TOKENSEC_SECRET_MISMATCH' },
        { outcome: 'refused', status: 400, code: 'ERR_TOKENSEC_MALFORMED_HEADER' },
        { outcome: 'refused', status: 405, code: 'ERR_TOKENSEC_METHOD_NOT_ALLOWED' },
        { outcome: 'failed', status: 500, code: 'ERR_TOKENSEC_PAYLOAD_FAILED' },
      ]);
      expect(events[0]).toMatchObject({ algorithm: 'x25519', jkt: wrongSecret.jkt });
      expect(events[1]?.algorithm).toBeUndefined();
      expect(published).toEqual(events);
      expect(handshakeChannel.name).toBe('tokensec:handshake');
    } finally {
      unsubscribe('tokensec:handshake', listener);
    }
  });

  it('no event holds the payload, the secret, a header value, a proof, a key or an error message', async () => {
    const published: unknown[] = [];
    const listener = (message: unknown) => published.push(message);
    subscribe('tokensec:handshake', listener);
    try {
      const { url, events } = await app();
      const sent: string[] = [];
      const received: string[] = [];
      for (const secret of [SECRET, 'another-secret-0123456789']) {
        const { headers, keys } = await signedHandshake(url, secret);
        sent.push(...Object.values(headers));
        const res = await fetch(url, { method: 'POST', headers });
        received.push(res.headers.get('x-tokensec-handshake') ?? '');
        const jwk = await crypto.subtle.exportKey('jwk', keys.privateKey).catch(() => undefined);
        if (jwk?.d) sent.push(jwk.d);
      }
      const text = JSON.stringify([events, published]);
      expect(events).toHaveLength(2);
      for (const secret of [TOKEN, SECRET, ...sent, ...received.filter(Boolean)]) expect(text).not.toContain(secret);
      // Nor any part of them long enough to matter (every 16-character window of the header values).
      for (const value of [...sent, ...received.filter(Boolean)])
        for (let i = 0; i + 16 <= value.length; i += 8) expect(text).not.toContain(value.slice(i, i + 16).replace(/^v3\./, '____'));
    } finally {
      unsubscribe('tokensec:handshake', listener);
    }
  });

  it('a listener that throws does not break the handshake', async () => {
    const { url } = await app(TOKEN, () => {
      throw new Error('broken logger');
    });
    const { headers } = await signedHandshake(url, SECRET);
    const res = await fetch(url, { method: 'POST', headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tokensec-handshake')).toMatch(/^v3\./);
  });

  it('onEvent must be a function', () => {
    expect(() => tokenSec.handshake({ payload: 't', onEvent: 'log' as never })).toThrow(
      /tokenSec\.handshake\(\): option "onEvent" must be a function \(event\) => void, got string\./,
    );
  });
});
