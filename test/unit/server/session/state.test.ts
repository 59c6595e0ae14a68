/**
 * Per-session keys that die with the session (src/server/session/state.ts): express-session's
 * store, wrapped once, deletes every declared key of a session it destroys (regenerate, destroy)
 * before it calls back; a failed deletion never fails the destroy and warns once; a key's TTL is
 * what the session has left.
 */
import session from 'express-session';
import { describe, expect, it } from 'vitest';
import { forgetSession, followSessionStore, keepPerSession, sessionStateKey, sessionTtl } from '../../../../src/server/session/state.js';
import { testMemoryStore } from '../../../support/atomic-stores.js';

const destroyed = (store: session.Store, sid: string) =>
  new Promise<unknown>((resolve) => {
    store.destroy(sid, (err?: unknown) => resolve(err));
  });

describe('the session store deletes TokenSec’s keys of a session it destroys', () => {
  it('destroy(sid) deletes the declared kinds of that session from each declared store, and only those', async () => {
    const sessions = new session.MemoryStore();
    const [bindings, other] = [testMemoryStore(), testMemoryStore()];
    keepPerSession('bind', bindings, 1000);
    keepPerSession('test-kind', other, 1000);
    bindings.addIfAbsent(sessionStateKey('bind', 'sid-1'), 'jkt-1', 60);
    bindings.addIfAbsent(sessionStateKey('bind', 'sid-2'), 'jkt-2', 60);
    other.addIfAbsent(sessionStateKey('test-kind', 'sid-1'), 'state', 60);
    followSessionStore({ sessionStore: sessions });
    followSessionStore({ sessionStore: sessions }); // wrapped once
    expect(await destroyed(sessions, 'sid-1')).toBeUndefined();
    expect([bindings.size(), other.size()]).toEqual([1, 0]);
    expect(bindings.addIfAbsent(sessionStateKey('bind', 'sid-2'), 'x', 60)).toBe('jkt-2');
  });

  it('a store that fails to delete: the destroy still calls back with the session store’s own answer, and Node warns once', async () => {
    const sessions = new session.MemoryStore();
    const failing = { addIfAbsent: () => undefined, delete: () => Promise.reject(new Error('redis down')) };
    keepPerSession('bind', failing, 50);
    followSessionStore({ sessionStore: sessions });
    const warnings: Error[] = [];
    const listen = (w: Error) => warnings.push(w);
    process.on('warning', listen);
    try {
      expect(await destroyed(sessions, 'sid-3')).toBeUndefined();
      await forgetSession('sid-4');
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', listen);
    }
    expect(warnings.map((w) => (w as Error & { code?: string }).code)).toEqual(['TOKENSEC_SESSION_STATE_NOT_DELETED']);
  });
});

describe('sessionTtl: what the session has left', () => {
  it.each([
    ['cookie expiry (maxAge left, ms)', { session: { cookie: { maxAge: 3_599_001 } } }, 3600],
    ['no expiry: the store’s ttl (connect-redis)', { session: { cookie: { maxAge: null } }, sessionStore: { ttl: 600 } }, 600],
    ['neither: one day', { session: { cookie: {} }, sessionStore: {} }, 86_400],
  ])('%s', (_, req, ttl) => {
    expect(sessionTtl(req)).toBe(ttl);
  });
});
