/**
 * The restart guard's rule (src/server/restart-guard.ts), on numbers: the marker's date, and which
 * keys a store that noticed a loss at N refuses. The real thing, a redis-server restarted empty
 * under two app instances, is test/integration/store-restart.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  RESTART_SHARDS,
  guardedKeys,
  newRestartMarker,
  noticedAt,
  refuseKeysFromBeforeRestart,
  restartMarkerKey,
  restartMarkerKeys,
} from '../../../src/server/restart-guard.js';

/** What Redis Cluster hashes (its hash-tag rule): the text between the first `{` and the next `}`, when not empty; else the whole key. */
const hashed = (key: string) => {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
};

const refusal = (since: number | undefined, notice: number, now = notice) => {
  try {
    refuseKeysFromBeforeRestart(since, notice, now);
    return undefined;
  } catch (error) {
    const { code, status, headers } = error as { code: string; status: number; headers: Record<string, string> };
    return { code, status, retryAfter: headers['Retry-After'] };
  }
};

describe('restart guard', () => {
  it('a marker is random, carries the time it was written, and is read back as seconds', () => {
    const marker = newRestartMarker(1_796_691_013_250);
    expect(marker).toMatch(/^[A-Za-z0-9_-]{22}:1796691013250$/);
    expect(newRestartMarker(0)).not.toBe(newRestartMarker(0));
    expect(noticedAt(marker)).toBe(1_796_691_013.25);
    expect(noticedAt(Buffer.from(marker))).toBe(1_796_691_013.25);
    expect([noticedAt('nonsense'), noticedAt(null), noticedAt('a:b')]).toEqual([NaN, NaN, NaN]);
    expect(restartMarkerKey('myapp:tokensec:')).toBe('myapp:tokensec:restart');
  });

  it('refuses a key that could have been set before the notice, with Retry-After; passes one that could not, or one with no date', () => {
    const notice = 1_000_000;
    // A proof dated at the notice, clockSkew 5: since = iat - 5.
    expect(refusal(notice - 5, notice)).toEqual({ code: 'ERR_TOKENSEC_STORE_RESTARTED', status: 503, retryAfter: '5' });
    expect(refusal(notice - 0.5, notice)).toEqual({ code: 'ERR_TOKENSEC_STORE_RESTARTED', status: 503, retryAfter: '1' });
    expect(refusal(notice, notice)).toBeUndefined();
    expect(refusal(notice + 10, notice)).toBeUndefined();
    expect(refusal(undefined, notice)).toBeUndefined();
    // A marker that cannot be read counts as a notice now.
    expect(refusal(notice - 1, NaN, notice)?.code).toBe('ERR_TOKENSEC_STORE_RESTARTED');
    expect(refusal(notice, NaN, notice)).toBeUndefined();
  });

  it("keys: one marker per Redis; on a cluster, each key shares its hash tag (so its slot) with its shard's marker", () => {
    expect(guardedKeys('tokensec:', 'jti:k:1')).toEqual({ stored: 'tokensec:jti:k:1', marker: 'tokensec:restart' });
    expect(restartMarkerKeys('tokensec:')).toEqual(['tokensec:restart']);
    const tags = new Set<string>();
    const markers = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const { stored, marker } = guardedKeys('tokensec:', `jti:key:{evil}${i}`, true);
      expect(hashed(stored)).toBe(hashed(marker));
      expect(stored.endsWith(`jti:key:{evil}${i}`)).toBe(true);
      tags.add(hashed(stored));
      markers.add(marker);
    }
    expect(tags.size).toBe(RESTART_SHARDS);
    // restartMarkerKeys names exactly the markers the keys use (a test marks a cluster in use with it).
    expect(new Set(restartMarkerKeys('tokensec:', true))).toEqual(markers);
    // A prefix with its own tag puts every key and marker in that one slot.
    const mine = guardedKeys('{myapp}:', 'bind:s1', true);
    expect([hashed(mine.stored), hashed(mine.marker)]).toEqual(['myapp', 'myapp']);
  });
});
