/**
 * The payload and the secret never appear in an error message, a log line, a response body, a
 * cookie or a plain header: checked with Express's own default error handler, which in
 * development logs err.stack and sends it in the body.
 */
import express from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createKeys, openResponse, requestHeader } from '../../client/crypto.js';
import { handshake } from '../../src/index.js';
import { hkdfSync } from 'node:crypto';
import { RandomPool, deriveResponseKey, encryptPayload, generateServerKeyPair, hkdfSha256 } from '../../src/server/crypto/primitives.js';
import { utf8 } from '../../src/protocol/context.js';
import { defined } from '../support/helpers.js';

const SECRET = 'S3CRET-value-that-must-not-leak';
const PAYLOAD = 'PAYLOAD-eyJzdWIiOiJsZWFrIn0-must-not-leak';
const TARGET = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };

let logs: string[] = [];
beforeEach(() => {
  logs = [];
  for (const method of ['error', 'warn', 'log', 'info'] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void logs.push(args.map(String).join(' ')));
  }
});
afterEach(() => vi.restoreAllMocks());

function app(payload: Parameters<typeof handshake>[0]['payload'], timeout?: number) {
  const a = express();
  a.set('env', 'development'); // log errors and put stacks in bodies, the leakiest setting
  a.post('/token', handshake({ payload, secret: SECRET, timeout, dpop: { required: false } }), (_req, res) => res.send('done'));
  return a; // no error handler of our own: Express's default one renders and logs
}

const header = async (secret = SECRET) => requestHeader(crypto.subtle, await createKeys(crypto.subtle), secret, TARGET);

/** Express's final handler logs on a deferred tick, after the response is sent. */
const logged = () => new Promise((resolve) => setTimeout(resolve, 30));

function expectClean(...texts: string[]) {
  const all = texts.join('\n') + logs.join('\n');
  expect(all).not.toContain(PAYLOAD);
  expect(all).not.toContain(SECRET);
  expect(all).not.toContain(Buffer.from(PAYLOAD).toString('base64url').slice(0, 20));
}

describe('nothing leaks', () => {
  const cases: [string, () => string | Promise<string>, () => Promise<string>, number][] = [
    ['wrong secret', () => PAYLOAD, () => header('wrong'), 403],
    ['malformed header', () => PAYLOAD, async () => 'v3.x25519.nope', 400],
    // The app's own error holds the payload: TokenSec's error keeps it as `cause`, out of its
    // message and stack, so Express's handler neither logs nor renders it.
    [
      'payload function throws an error holding the payload',
      () => {
        throw new Error(`could not use ${PAYLOAD}`);
      },
      header,
      500,
    ],
    ['payload too large', () => PAYLOAD.repeat(200), header, 500],
    ['payload of the wrong type', () => ({ token: PAYLOAD }) as unknown as string, header, 500],
    ['payload timeout', () => new Promise<string>(() => {}), header, 503],
  ];
  it.each(cases)('%s', async (_, payload, make, status) => {
    const res = await request(app(payload, 100))
      .post('/token')
      .set('x-tokensec-handshake', await make());
    expect(res.status).toBe(status);
    await logged();
    expect(logs.length).toBeGreaterThan(0); // Express did log the error: the check has something to read
    expectClean(res.text, JSON.stringify(res.headers));
  });

  it('a successful handshake carries the payload only encrypted: not in the body, a cookie or another header', async () => {
    const keys = await createKeys(crypto.subtle);
    const res = await request(app(PAYLOAD))
      .post('/token')
      .set('x-tokensec-handshake', await requestHeader(crypto.subtle, keys, SECRET, TARGET))
      .expect(200, 'done');
    expect(res.headers['set-cookie']).toBeUndefined();
    const { 'x-tokensec-handshake': header, ...others } = res.headers;
    const sealed = defined(header, 'handshake header');
    expectClean(res.text, JSON.stringify(others), sealed);
    expect(await openResponse(crypto.subtle, keys, SECRET, TARGET, sealed)).toBe(PAYLOAD);
    await logged();
    expect(logs).toEqual([]);
  });
});

describe('key material does not outlive its use on the server', () => {
  it('the random pool wipes the bytes it hands out, and refills from the CSPRNG when spent', () => {
    const pool = new RandomPool(64);
    const first = pool.take(32);
    expect(first.some((byte) => byte !== 0)).toBe(true);
    expect(pool.buffer.subarray(0, 32).every((byte) => byte === 0)).toBe(true);
    const rest = pool.buffer.subarray(32);
    expect(rest.some((byte) => byte !== 0)).toBe(true); // not handed out yet
    const second = pool.take(32);
    expect(second).toEqual(Buffer.from(second)); // a copy, not a view into the pool
    expect(pool.buffer.every((byte) => byte === 0)).toBe(true);
    const third = pool.take(32); // spent: refilled
    expect(third.equals(first) || third.equals(second)).toBe(false);
    expect(pool.buffer.subarray(32).some((byte) => byte !== 0)).toBe(true);
  });

  it('deriving the response key wipes the shared secret; encrypting wipes the key', () => {
    const server = generateServerKeyPair('x25519');
    const client = generateServerKeyPair('x25519');
    const sharedSecret = server.deriveSharedSecret(client.publicKey);
    expect(sharedSecret.some((byte) => byte !== 0)).toBe(true);
    const key = deriveResponseKey({
      request: { algorithm: 'x25519', publicKey: client.publicKey },
      serverPublicKey: server.publicKey,
      sharedSecret,
      secret: SECRET,
      target: TARGET,
    });
    expect(sharedSecret.every((byte) => byte === 0)).toBe(true);
    expect(key.key.some((byte) => byte !== 0)).toBe(true);
    expect(encryptPayload(key, PAYLOAD)).toMatch(/^v3\./);
    expect(key.key.every((byte) => byte === 0)).toBe(true);
  });

  it('HKDF wipes its PRK and every T(i) block; the output, in a buffer of its own, is RFC 5869 HKDF', () => {
    const ikm = Buffer.alloc(32, 7);
    const salt = Buffer.from('salt');
    const info = Buffer.from('info');
    for (const length of [32, 42, 82]) {
      const trace: Uint8Array[] = [];
      const okm = hkdfSha256(ikm, salt, info, length, trace);
      expect(okm).toEqual(Buffer.from(hkdfSync('sha256', ikm, salt, info, length)));
      expect(okm.buffer.byteLength).toBe(length); // its own buffer, not a view of the blocks
      expect(trace).toHaveLength(1 + Math.ceil(length / 32)); // the PRK and each block
      for (const buffer of trace) expect(buffer.every((byte) => byte === 0)).toBe(true);
    }
  });

  it('deriving the response key wipes the secret bytes, the PRK and the HKDF block: only the key is left', () => {
    const server = generateServerKeyPair('x25519');
    const client = generateServerKeyPair('x25519');
    const sharedSecret = server.deriveSharedSecret(client.publicKey);
    const trace: Uint8Array[] = [];
    const key = deriveResponseKey({
      request: { algorithm: 'x25519', publicKey: client.publicKey },
      serverPublicKey: server.publicKey,
      sharedSecret,
      secret: SECRET,
      target: TARGET,
      trace,
    });
    expect(trace).toHaveLength(3); // the secret's bytes (HKDF salt), the PRK, T(1)
    for (const buffer of [sharedSecret, ...trace]) expect(buffer.every((byte) => byte === 0)).toBe(true);
    expect(key.key.some((byte) => byte !== 0)).toBe(true);
    expect(
      Buffer.from(key.key).equals(
        Buffer.from(hkdfSync('sha256', server.deriveSharedSecret(client.publicKey), utf8(SECRET), key.context, 32)),
      ),
    ).toBe(true);
  });

  it('a payload refused at encryption still wipes the key', () => {
    const server = generateServerKeyPair('x25519');
    const client = generateServerKeyPair('x25519');
    const key = deriveResponseKey({
      request: { algorithm: 'x25519', publicKey: client.publicKey },
      serverPublicKey: server.publicKey,
      sharedSecret: server.deriveSharedSecret(client.publicKey),
      secret: SECRET,
      target: TARGET,
    });
    expect(() => encryptPayload(key, 'x'.repeat(6145))).toThrow(expect.objectContaining({ code: 'ERR_TOKENSEC_PAYLOAD_TOO_LARGE' }));
    expect(key.key.every((byte) => byte === 0)).toBe(true);
  });
});
