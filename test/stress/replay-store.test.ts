/**
 * The default memory store cannot fill at the rate one process can verify proofs: 10,000 new
 * proof ids every second for three whole acceptance windows (the default maxAge 60 s + clockSkew
 * 5 s), through recordProof exactly as dpop() records them, with none refused. The clock is
 * vitest's fake Date: one fake second per 10,000 ids, so the test checks counts, not speed.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { memoryStore } from '../../src/index.js';
import { recordProof, type DpopVerifyOptions, type VerifiedProof } from '../../src/server/dpop/verify.js';

afterEach(() => {
  vi.useRealTimers();
});

it('10,000 new ids/s for three windows at the defaults: not one refused, and replays still caught', async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(1_800_000_000_000);
  const store = memoryStore(); // the defaults: max 1,000,000, maxPerOwner max / 64
  const options: DpopVerifyOptions = { algorithms: ['ES256'], maxAge: 60, clockSkew: 5, replayStore: store };
  const window = options.maxAge + options.clockSkew;
  // Half the ids come from 1,000 clients that keep calling, half from a new key each time (a
  // visitor making a new key per handshake): both kinds fit.
  const steady = Array.from({ length: 1000 }, (_, i) => `steady-key-${String(i).padStart(33, '0')}`);
  const proof = (jkt: string, jti: string) => ({ jkt, claims: { jti } }) as unknown as VerifiedProof;
  let accepted = 0;
  for (let second = 0; second < 3 * window; second++) {
    for (let i = 0; i < 10_000; i++) {
      const jkt = i % 2 === 0 ? steady[(i / 2) % 1000]! : `fresh-key-${second}-${i}`;
      await recordProof(proof(jkt, `${second}.${i}`), options);
      accepted++;
    }
    // A replay of an id from this window is still refused as one, not as a full store.
    if (second % 30 === 29) {
      await expect(recordProof(proof(steady[0]!, `${second - 20}.0`), options)).rejects.toMatchObject({
        code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF',
      });
    }
    vi.advanceTimersByTime(1000);
  }
  expect(accepted).toBe(10_000 * 3 * window);
}, 300_000);
