/**
 * The payload and the secret never appear in an error message, a log line, a response body, a
 * cookie or a plain header: checked with Express's own default error handler, which in
 * development logs err.stack and sends it in the body.
 */
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openResponse } from '../../../../client/crypto.js';
import type { handshake } from '../../../../src/index.js';
import { handshakeApp, handshakeHeader } from '../../../support/handshake.js';
import { defined } from '../../../support/helpers.js';

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
  // env 'development': log errors and put stacks in bodies, the leakiest setting; no error handler of
  // our own: Express's default one renders and logs.
  return handshakeApp(
    { payload, secret: SECRET, timeout, dpop: { required: false } },
    { env: 'development', errors: 'express', after: (_req, res) => res.send('done') },
  ).app;
}

const header = async (secret = SECRET) => (await handshakeHeader(secret, TARGET)).value;

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
    const { keys, value } = await handshakeHeader(SECRET, TARGET);
    const res = await request(app(PAYLOAD)).post('/token').set('x-tokensec-handshake', value).expect(200, 'done');
    expect(res.headers['set-cookie']).toBeUndefined();
    const { 'x-tokensec-handshake': header, ...others } = res.headers;
    const sealed = defined(header, 'handshake header');
    expectClean(res.text, JSON.stringify(others), sealed);
    expect(await openResponse(crypto.subtle, keys, SECRET, TARGET, sealed)).toBe(PAYLOAD);
    await logged();
    expect(logs).toEqual([]);
  });
});
