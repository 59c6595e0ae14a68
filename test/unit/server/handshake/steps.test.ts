/**
 * The step runner of the handshake pipeline: synchronous while no step waits, asynchronous from
 * the first promise on, errors and `finally` in either mode; and the handshake itself answering
 * within the middleware call when its secret and payload are plain values.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createKeys, requestHeader } from '../../../../client/crypto.js';
import tokenSec from '../../../../src/index.js';
import { runSteps } from '../../../../src/server/handshake/steps.js';

function collect<T>(steps: Generator<unknown, T, unknown>) {
  const outcome: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  runSteps(
    steps,
    (value) => Object.assign(outcome, { value, settled: true }),
    (error) => Object.assign(outcome, { error, settled: true }),
  );
  return outcome;
}

describe('runSteps', () => {
  it('plain values: done before runSteps returns, each yield getting its value back', () => {
    const log: string[] = [];
    const outcome = collect(
      (function* () {
        const a = (yield 1) as number;
        const b = (yield 'two') as string;
        try {
          return `${a}${b}`;
        } finally {
          log.push('finally');
        }
      })(),
    );
    expect(outcome).toEqual({ value: '1two', settled: true });
    expect(log).toEqual(['finally']);
  });

  it('a thrown step fails at once, after the finally block', () => {
    const log: string[] = [];
    const outcome = collect(
      (function* () {
        try {
          yield 1;
          throw new Error('sync');
        } finally {
          log.push('finally');
        }
      })(),
    );
    expect(outcome).toMatchObject({ settled: true, error: new Error('sync') });
    expect(log).toEqual(['finally']);
  });

  it('a promise: resumes when it settles; a rejection is thrown into the generator, where it can be caught', async () => {
    const outcome = collect(
      (function* () {
        const a = (yield Promise.resolve(2)) as number;
        try {
          yield Promise.reject(new Error('late'));
        } catch (error) {
          return `${a} ${(error as Error).message}`;
        }
        return 'unreached';
      })(),
    );
    expect(outcome.settled).toBe(false);
    await expect.poll(() => outcome.settled).toBe(true);
    expect(outcome.value).toBe('2 late');
  });
});

describe('the handshake answers within the middleware call when nothing has to wait', () => {
  const SECRET = 's-0123456789abcdef';
  async function call(payload: string | (() => string | Promise<string>), secret: string | (() => string | Promise<string>) = SECRET) {
    const keys = await createKeys(crypto.subtle, 'x25519');
    const value = await requestHeader(crypto.subtle, keys, SECRET, { header: 'x-tokensec-handshake', method: 'POST', path: '/token' });
    const req = new IncomingMessage(new Socket());
    Object.assign(req, { method: 'POST', url: '/token', headers: { 'x-tokensec-handshake': value } });
    const res = new ServerResponse(req);
    let nextCalls = 0;
    const middleware = tokenSec.handshake({ payload, secret, dpop: { required: false } });
    // Counted around the synchronous call only: a timer of another test cannot fire in between.
    const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const before = timers();
    middleware(req, res, () => nextCalls++);
    return { res, nextCalls: () => nextCalls, timersAdded: timers() - before };
  }

  it('secret and payload as plain values: header set and next() called before the call returns', async () => {
    const { res, nextCalls } = await call('token');
    expect(nextCalls()).toBe(1);
    expect(String(res.getHeader('x-tokensec-handshake'))).toMatch(/^v3\./);
  });

  it('secret and payload functions that return values: answered before the call returns, no timer left behind', async () => {
    const { res, nextCalls, timersAdded } = await call(
      () => 'token',
      () => SECRET,
    );
    expect(nextCalls()).toBe(1);
    expect(String(res.getHeader('x-tokensec-handshake'))).toMatch(/^v3\./);
    expect(timersAdded).toBe(0);
  });

  it('a payload function: the answer comes later, once it resolves', async () => {
    const { res, nextCalls } = await call(async () => 'token');
    expect(nextCalls()).toBe(0);
    await expect.poll(nextCalls).toBe(1);
    expect(String(res.getHeader('x-tokensec-handshake'))).toMatch(/^v3\./);
  });
});
