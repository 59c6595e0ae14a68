/**
 * Property-based fuzzing of the server: at least 100,000 generated handshake headers per run.
 * Every one must be refused with a 4xx and a stable code, with no crash, no unhandled rejection,
 * no response header, and the payload nowhere.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createKeys, requestHeader } from '../../client/crypto.js';
import { TokenSecError, handshake } from '../../src/index.js';
import { hmacSha256 } from '../../src/server/crypto/primitives.js';
import { bindingInput, utf8 } from '../../src/protocol/context.js';
import { encodeBase64url } from '../../src/protocol/base64url.js';
import { formatRequest, type Algorithm } from '../../src/protocol/wire.js';
import { SMALL_ORDER_POINTS, defined, listen } from '../support/helpers.js';

const SECRET = 'fuzz-secret-0123456789';
const PAYLOAD = 'PAYLOAD-eyJzdWIiOiJmdXp6In0-must-never-leak';
const TARGET = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };
const CODES_4XX = new Set([
  'ERR_TOKENSEC_HEADER_TOO_LARGE',
  'ERR_TOKENSEC_MALFORMED_HEADER',
  'ERR_TOKENSEC_UNSUPPORTED_VERSION',
  'ERR_TOKENSEC_UNSUPPORTED_ALGORITHM',
  'ERR_TOKENSEC_INVALID_PUBLIC_KEY',
  'ERR_TOKENSEC_SECRET_MISMATCH',
]);

const middleware = handshake({ payload: PAYLOAD, secret: SECRET, dpop: { required: false } });

/** Runs the real middleware on a minimal request/response pair and reports what it did. */
function answer(value: string): Promise<{ error: unknown; headers: Record<string, unknown> }> {
  const headers: Record<string, unknown> = {};
  const req = {
    headers: { 'x-tokensec-handshake': value },
    method: 'POST',
    url: '/token',
    originalUrl: '/token',
  } as unknown as IncomingMessage;
  const res = {
    setHeader: (name: string, v: unknown) => void (headers[name.toLowerCase()] = v),
    getHeader: (name: string) => headers[name.toLowerCase()],
    end: () => {},
  } as unknown as ServerResponse;
  return new Promise((resolve) => middleware(req, res, (error) => resolve({ error, headers })));
}

const withBinding = (algorithm: Algorithm, publicKey: Uint8Array) =>
  formatRequest(algorithm, publicKey, hmacSha256(utf8(SECRET), bindingInput(algorithm, publicKey, TARGET)));

const SMALL_ORDER = SMALL_ORDER_POINTS.map((h) => new Uint8Array(Buffer.from(h, 'hex')));

let validHeaders: string[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  for (const algorithm of ['x25519', 'p256', 'x25519', 'p256'] as const) {
    validHeaders.push(await requestHeader(crypto.subtle, await createKeys(crypto.subtle, algorithm), SECRET, TARGET));
  }
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
const field = fc.oneof(
  bytes(80).map(encodeBase64url),
  fc.string({ maxLength: 60 }),
  bytes(40).map((b) => Buffer.from(b).toString('base64')),
);

/** Hostile header values, each of which must be refused. */
const hostile = fc.oneof(
  // random text, including non-ASCII and control characters
  fc.string({ maxLength: 300, unit: 'binary' }),
  // random bytes in base64url and base64
  bytes(200).map(encodeBase64url),
  bytes(200).map((b) => Buffer.from(b).toString('base64')),
  // the right shape with wrong parts
  fc
    .tuple(
      fc.constantFrom('v3', 'v1', 'v2', 'V3', '3', '', 'v03', 'v3 '),
      fc.constantFrom('x25519', 'p256', 'X25519', 'P-256', 'x448', 'ecdh', ''),
      field,
      field,
      fc.array(field, { maxLength: 2 }),
    )
    .map(([v, a, k, m, extra]) => [v, a, k, m, ...extra].join('.')),
  // real headers, mutated: truncated, a character changed, inserted or removed
  fc
    .tuple(
      fc.nat({ max: 3 }),
      fc.nat(),
      fc.constantFrom('truncate', 'replace', 'insert', 'delete'),
      fc.string({ minLength: 1, maxLength: 1, unit: 'binary-ascii' }),
    )
    .map(([which, at, how, ch]) => {
      const good = defined(validHeaders[which], 'a valid header');
      const i = at % good.length;
      if (how === 'truncate') return good.slice(0, i);
      if (how === 'replace') return good.slice(0, i) + (good[i] === ch ? (ch === 'A' ? 'B' : 'A') : ch) + good.slice(i + 1);
      if (how === 'insert') return good.slice(0, i) + ch + good.slice(i);
      return good.slice(0, i) + good.slice(i + 1);
    }),
  // wrong key lengths with a valid binding
  fc
    .tuple(fc.constantFrom<Algorithm>('x25519', 'p256'), bytes(100))
    .filter(([a, k]) => k.length !== (a === 'x25519' ? 32 : 65))
    .map(([a, k]) => withBinding(a, k)),
  // P-256 points that are not on the curve, with a valid binding
  fc.uint8Array({ minLength: 64, maxLength: 64 }).map((xy) => withBinding('p256', Uint8Array.of(4, ...xy))),
  // X25519 small-order points with a valid binding: shared secret all zeros, must be refused
  fc.constantFrom(...SMALL_ORDER).map((k) => withBinding('x25519', k)),
  // huge values
  // (Node refuses request headers over 16 KB before any middleware runs.)
  fc.integer({ min: 257, max: 20_000 }).map((n) => `v3.x25519.${'A'.repeat(n)}`),
);

it('refuses 100,000 generated hostile headers with a 4xx and a stable code', async () => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(hostile, async (value) => {
      runs++;
      const { error, headers } = await answer(value);
      expect(error).toBeInstanceOf(TokenSecError);
      const e = error as TokenSecError;
      expect(CODES_4XX.has(e.code), `${e.code} for ${JSON.stringify(value.slice(0, 80))}`).toBe(true);
      expect(e.status).toBeGreaterThanOrEqual(400);
      expect(e.status).toBeLessThan(500);
      expect(headers['x-tokensec-handshake']).toBeUndefined();
      expect(`${e.message}${JSON.stringify(headers)}`).not.toContain(PAYLOAD);
    }),
    { numRuns: 100_000 },
  );
  expect(runs).toBeGreaterThanOrEqual(100_000);
  expect(unhandled).toEqual([]);
}, 180_000);

it('the same over a real socket: a sample through Express answers 4xx JSON, never the payload', async () => {
  const app = express();
  app.post('/token', handshake({ payload: PAYLOAD, secret: SECRET, terminate: true, dpop: { required: false } }));
  app.use((err: TokenSecError, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(err.status ?? 500).json({ code: err.code });
  });
  const server = await listen(app);
  try {
    // Header values must be valid HTTP field values to be sent at all (no control characters).
    const sendable = hostile.filter((v) => /^[\x20-\x7e]*$/.test(v) && v.length < 16_000 && v.trim() === v && v !== '');
    await fc.assert(
      fc.asyncProperty(sendable, async (value) => {
        const response = await fetch(`${server.origin}/token`, { method: 'POST', headers: { 'x-tokensec-handshake': value } });
        const body = await response.text();
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.status).toBeLessThan(500);
        expect(CODES_4XX.has(JSON.parse(body).code)).toBe(true);
        expect(response.headers.get('x-tokensec-handshake')).toBeNull();
        expect(body).not.toContain(PAYLOAD);
      }),
      { numRuns: 2_000 },
    );
  } finally {
    await server.close();
  }
  expect(unhandled).toEqual([]);
}, 120_000);

it('a valid header from the pool is accepted (the fuzz target is live, not refusing everything)', async () => {
  for (const value of validHeaders) {
    const { error, headers } = await answer(value);
    expect(error).toBeUndefined();
    expect(headers['x-tokensec-handshake']).toMatch(/^v3\./);
  }
});
