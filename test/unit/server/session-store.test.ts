/**
 * tokenSec.boundedSessionStore(): an express-session store whose calls answer within a time limit,
 * failures and time-outs as 503 ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE (with the cause kept), a
 * late answer ignored, "no such session" passed on; express-session's own MemoryStore and an
 * async store (connect-redis style) behind it; options checked. The real outage, with connect-redis
 * and redis-server behind nginx, is test/integration/production-outage.test.ts.
 */
import express from 'express';
import session, { MemoryStore } from 'express-session';
import { describe, expect, it } from 'vitest';
import tokenSec, { TokenSecError } from '../../../src/index.js';
import { listen } from '../../support/helpers.js';

type Callback = (err?: unknown, value?: unknown) => void;

/** A store whose calls are answered by the test: each call waits in `calls` until the test settles it. */
function heldStore() {
  const calls: { name: string; args: unknown[]; answer: Callback }[] = [];
  const hold = (name: string) =>
    function (this: unknown, ...args: unknown[]) {
      const answer = args.pop() as Callback;
      calls.push({ name, args, answer });
    };
  return { calls, store: { get: hold('get'), set: hold('set'), destroy: hold('destroy'), extra: () => 'inherited' } };
}

const callback = () => {
  let resolve!: (value: [unknown, unknown]) => void;
  const done = new Promise<[unknown, unknown]>((r) => (resolve = r));
  return { done, cb: (err?: unknown, value?: unknown) => resolve([err, value]) };
};

describe('boundedSessionStore()', () => {
  it('passes answers through, keeps the rest of the store, and does not change the store', async () => {
    const { calls, store } = heldStore();
    const bounded = tokenSec.boundedSessionStore(store, { timeout: 60_000 });
    expect(bounded.extra()).toBe('inherited');
    expect(Object.getPrototypeOf(bounded)).toBe(store);
    const { done, cb } = callback();
    bounded.get('sid', cb);
    expect(calls.map((c) => [c.name, c.args])).toEqual([['get', ['sid']]]);
    calls[0]!.answer(null, { cookie: {} });
    expect(await done).toEqual([undefined, { cookie: {} }]);
    expect(store.get).not.toBe(bounded.get);
  });

  it('turns a failure into 503 ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE, cause kept; "no such session" (ENOENT) passes unchanged', async () => {
    const { calls, store } = heldStore();
    const bounded = tokenSec.boundedSessionStore(store);
    const failure = new Error('The client is offline');
    const one = callback();
    bounded.set('sid', { cookie: {} }, one.cb);
    calls[0]!.answer(failure);
    const [err] = await one.done;
    expect(err).toBeInstanceOf(TokenSecError);
    expect(err).toMatchObject({ code: 'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE', status: 503, cause: failure });
    const notFound = Object.assign(new Error('no session'), { code: 'ENOENT' });
    const two = callback();
    bounded.get('sid', two.cb);
    calls[1]!.answer(notFound);
    expect((await two.done)[0]).toBe(notFound);
  });

  it('answers 503 after the timeout when the store does not, and ignores its late answer', async () => {
    const { calls, store } = heldStore();
    const bounded = tokenSec.boundedSessionStore(store, { timeout: 20 });
    const answers: unknown[] = [];
    const { done, cb } = callback();
    bounded.destroy('sid', (err?: unknown) => {
      answers.push(err);
      cb(err);
    });
    const [err] = await done;
    expect(err).toMatchObject({ code: 'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE', status: 503 });
    calls[0]!.answer(null);
    expect(answers).toHaveLength(1);
  });

  it('an async store (connect-redis style) that rejects, and one that throws', async () => {
    const rejecting = tokenSec.boundedSessionStore({
      get: async (..._args: unknown[]) => Promise.reject(new Error('down')),
      set: async () => {},
    });
    const one = callback();
    rejecting.get('sid', one.cb);
    expect((await one.done)[0]).toMatchObject({ code: 'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE' });
    const throwing = tokenSec.boundedSessionStore({
      get: (..._args: unknown[]) => {
        throw new Error('broken');
      },
      set: () => {},
    });
    const two = callback();
    throwing.get('sid', two.cb);
    expect((await two.done)[0]).toMatchObject({ code: 'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE' });
  });

  it('behind express-session: a store that fails answers 503 with the code through errorHandler(), not a bare 500', async () => {
    const memory = new MemoryStore();
    let down = false;
    const get = memory.get.bind(memory);
    memory.get = (sid, cb) => (down ? cb(new Error('connection lost')) : get(sid, cb));
    const app = express();
    app.use(session({ store: tokenSec.boundedSessionStore(memory), secret: 'a test secret', resave: false, saveUninitialized: true }));
    app.get('/', (req, res) => res.json({ id: req.sessionID }));
    app.use(tokenSec.errorHandler());
    const server = await listen(app);
    try {
      const first = await fetch(`${server.origin}/`);
      const cookie = (first.headers.get('set-cookie') ?? '').split(';', 1)[0] ?? '';
      expect(first.status).toBe(200);
      down = true;
      const refused = await fetch(`${server.origin}/`, { headers: { cookie } });
      expect([refused.status, refused.headers.get('tokensec-error'), await refused.json()]).toEqual([
        503,
        'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE',
        { code: 'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE', message: 'The session store did not answer in time: try again later.' },
      ]);
      down = false;
      expect((await fetch(`${server.origin}/`, { headers: { cookie } })).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it.each([
    [[undefined], /first argument must be an express-session store/],
    [[{ get() {} }], /first argument must be an express-session store/],
    [[{ get() {}, set() {} }, { timeout: 0 }], /"timeout" must be/],
    [[{ get() {}, set() {} }, { timeot: 5 }], /unknown option "timeot"\. Did you mean "timeout"\?/],
  ])('%o is refused when created', (args, message) => {
    expect(() => (tokenSec.boundedSessionStore as (...a: unknown[]) => unknown)(...args)).toThrow(message);
  });
});
