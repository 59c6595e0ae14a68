/**
 * The handshake's deadline: one timeout over the app's secret and payload
 * functions, an AbortSignal that fires on timeout or when the client disconnects, made only when an
 * app function waits.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import request from 'supertest';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { HandshakeDeadline } from '../../../../src/server/handshake/deadline.js';
import { plainHandshakeApp as app, PLAIN_SECRET as SECRET, x25519Header as header } from '../../../support/handshake.js';
import { listen } from '../../../support/helpers.js';

const servers: { close(): Promise<void> }[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

describe('deadline and cancellation', () => {
  it('the timeout covers the secret function: one that never settles → 503 ERR_TOKENSEC_TIMEOUT', async () => {
    const { app: a } = app({ secret: () => new Promise<string>(() => {}), timeout: 50 });
    await request(a)
      .post('/token')
      .set('x-tokensec-handshake', (await header(SECRET)).value)
      .expect(503, { code: 'ERR_TOKENSEC_TIMEOUT' });
  });

  it('the payload function gets an AbortSignal that fires on timeout', async () => {
    let signal: AbortSignal | undefined;
    const { app: a } = app({
      timeout: 50,
      payload: (_req, _res, context) => {
        signal = context.signal;
        return new Promise<string>(() => {});
      },
    });
    await request(a)
      .post('/token')
      .set('x-tokensec-handshake', (await header(SECRET)).value)
      .expect(503);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toMatchObject({ code: 'ERR_TOKENSEC_TIMEOUT' });
  });

  it('the payload function gets an AbortSignal that fires when the client disconnects', async () => {
    let resolveAborted: (reason: unknown) => void = () => {};
    const aborted = new Promise((resolve) => (resolveAborted = resolve));
    let started: () => void = () => {};
    const running = new Promise<void>((resolve) => (started = resolve));
    const { app: a } = app({
      payload: (_req, _res, { signal }) => {
        signal.addEventListener('abort', () => resolveAborted(signal.reason));
        started();
        return new Promise<string>(() => {});
      },
    });
    const server = await listen(a);
    servers.push(server);
    const controller = new AbortController();
    const pending = fetch(`${server.origin}/token`, {
      method: 'POST',
      headers: { 'x-tokensec-handshake': (await header(SECRET)).value },
      signal: controller.signal,
    });
    await running;
    controller.abort();
    await expect(pending).rejects.toThrow();
    expect(await aborted).toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
  });
});

describe('the deadline, made only when an app function waits', () => {
  const response = () => new ServerResponse(new IncomingMessage(new Socket()));
  const never = () => new Promise<string>(() => {});

  it('counts from the first app function, even one that returned at once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const deadline = new HandshakeDeadline(response(), 50);
      expect(deadline.call(() => 'secret')).toBe('secret');
      vi.advanceTimersByTime(30);
      let outcome: unknown;
      Promise.resolve(deadline.call(never)).catch((error: unknown) => (outcome = error));
      await vi.advanceTimersByTimeAsync(19);
      expect(outcome).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1); // 50 ms after the first call, not after this one
      expect(outcome).toMatchObject({ code: 'ERR_TOKENSEC_TIMEOUT', status: 503 });
      deadline.dispose();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a client gone before the first waiting function: its signal is already aborted', async () => {
    const res = response();
    res.destroy();
    const deadline = new HandshakeDeadline(res, 10_000);
    await expect(deadline.call(never)).rejects.toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
    expect(deadline.signal.reason).toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
    deadline.dispose();
  });

  it('a synchronous throw comes back synchronously', () => {
    const deadline = new HandshakeDeadline(response(), 50);
    expect(() =>
      deadline.call(() => {
        throw new Error('db down');
      }),
    ).toThrow('db down');
  });
});

describe('the deadline arms only what waits', () => {
  const response = () => new ServerResponse(new IncomingMessage(new Socket()));

  it('a value: nothing armed; a promise: the disconnect listener until dispose()', async () => {
    const res = response();
    const deadline = new HandshakeDeadline(res, 1000);
    expect(deadline.call(() => 'now')).toBe('now');
    expect(res.listenerCount('close')).toBe(0);
    const waiting = deadline.call(() => Promise.resolve('later'));
    expect(res.listenerCount('close')).toBe(1);
    await expect(waiting).resolves.toBe('later');
    deadline.dispose();
    expect(res.listenerCount('close')).toBe(0);
  });

  it('a client gone before an async function is called: the call fails, and the function rejecting later is no unhandled rejection', async () => {
    const res = response();
    res.destroy();
    const deadline = new HandshakeDeadline(res, 60_000);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      let rejectLater: (error: Error) => void = () => {};
      const waiting = deadline.call(() => new Promise((_resolve, reject) => (rejectLater = reject)));
      await expect(waiting).rejects.toMatchObject({ code: 'ERR_TOKENSEC_ABORTED', status: 499 });
      rejectLater(new Error('the fetch the signal aborted'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      deadline.dispose();
    }
  });

  it('a disconnect rejects the call waiting, aborts the signal read later, and refuses further calls', async () => {
    const res = response();
    const deadline = new HandshakeDeadline(res, 60_000);
    const waiting = deadline.call(() => new Promise(() => {}));
    res.emit('close');
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_TOKENSEC_ABORTED', status: 499 });
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.signal.reason).toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
    expect(() => deadline.call(() => 'x')).toThrow(expect.objectContaining({ code: 'ERR_TOKENSEC_ABORTED' }));
    deadline.dispose();
  });

  it('a signal read before the time-out aborts with ERR_TOKENSEC_TIMEOUT', async () => {
    const deadline = new HandshakeDeadline(response(), 5);
    const reason = await new Promise((resolve) => {
      deadline.call(({ signal } = deadline) => signal.addEventListener('abort', () => resolve(signal.reason)));
    });
    expect(reason).toMatchObject({ code: 'ERR_TOKENSEC_TIMEOUT', status: 503 });
    deadline.dispose();
  });
});
