/**
 * Threat table, "script that ran once in the page": it cannot copy the DPoP key, but it can sign
 * with it. Run once at time T, it signs a ladder of proofs dated ahead (iat = T, T+5, T+10, …, one
 * for each moment it means to call the API later), with the nonce current at T, and sends them
 * home; the token it read lives 5 minutes. Each proof alone passes the iat check (iat − clockSkew
 * to iat + maxAge), so without server nonces the ladder lasts the token's whole life. With the
 * defaults (nonces on, a 30 s window, one past window accepted), every proof of the ladder is
 * refused from at most 2 × 30 s after T: the bound SECURITY.md states (65 s, with processes'
 * clocks within 5 s of each other: here one process, one clock).
 */
import express from 'express';
import { SignJWT, calculateJwkThumbprint, jwtVerify } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import tokenSec from '../../src/index.js';
import { fakeClock } from '../support/clock.js';
import { listen } from '../support/helpers.js';
import { joseProof, proofKey, sha256, type ProofKey } from '../support/proofs.js';

const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the test!');
const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;
let server: Awaited<ReturnType<typeof listen>>;

beforeAll(async () => {
  const app = express();
  const me = (_req: express.Request, res: express.Response) => res.json({ ok: true });
  // The defaults: nothing about nonces is configured.
  app.get('/api/me', tokenSec.dpop({ verifyToken }), me);
  // What 3.1 did by default, and what `nonce: false` still does.
  app.get('/api/no-nonce', tokenSec.dpop({ verifyToken, nonce: false }), me);
  app.use(
    (
      err: { status?: number; code?: string; headers?: Record<string, string> },
      _req: express.Request,
      res: express.Response,
      _next: express.NextFunction,
    ) => {
      res
        .set(err.headers ?? {})
        .status(err.status ?? 500)
        .json({ code: err.code });
    },
  );
  server = await listen(app);
});
afterAll(() => server.close());
afterEach(() => vi.useRealTimers());

interface Page {
  key: ProofKey;
  token: string;
}

async function page(): Promise<Page> {
  const key = await proofKey();
  const jkt = await calculateJwkThumbprint(key.jwk);
  const token = await new SignJWT({ sub: 'alice', cnf: { jkt } })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('5m')
    .sign(signingKey);
  return { key, token };
}

/** The script, run once at the current time: one call to learn the nonce, then a ladder of proofs dated every 5 s for 300 s. */
async function runScriptOnce({ key, token }: Page, path: string): Promise<Map<number, string>> {
  const url = `${server.origin}${path}`;
  const now = Math.floor(Date.now() / 1000);
  const first = await fetch(url, {
    headers: { authorization: `DPoP ${token}`, dpop: await joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token) }) },
  });
  const nonce = first.headers.get('dpop-nonce') ?? undefined;
  const ladder = new Map<number, string>();
  for (let offset = 0; offset < 300; offset += 5) {
    ladder.set(offset, await joseProof(key, { htm: 'GET', htu: url, iat: now + offset, ath: await sha256(token), nonce }));
  }
  return ladder;
}

/** The attacker, later: at T + offset, the proof of the ladder dated then. */
async function replayLadder(
  { token }: Page,
  path: string,
  ladder: Map<number, string>,
  clock: ReturnType<typeof fakeClock>,
  start: number,
) {
  const outcomes: [number, number, string | undefined][] = [];
  for (const [offset, proof] of ladder) {
    clock.set(start + offset * 1000);
    const response = await fetch(`${server.origin}${path}`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    const body = (await response.json()) as { code?: string };
    outcomes.push([offset, response.status, body.code]);
  }
  return outcomes;
}

describe('a ladder of proofs signed once, dated ahead with the nonce of that moment', () => {
  it('with the defaults: accepted less than 60 s after the script ran (2 × the 30 s window), refused from then on with NONCE_STALE', async () => {
    // The attacker's best moment: the first second of a nonce window.
    const start = Math.ceil(Date.now() / 30_000) * 30_000 + 60_000;
    const clock = fakeClock(start);
    const victim = await page();
    const ladder = await runScriptOnce(victim, '/api/me');
    const outcomes = await replayLadder(victim, '/api/me', ladder, clock, start);
    const accepted = outcomes.filter(([, status]) => status === 200).map(([offset]) => offset);
    expect(accepted).toEqual([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55]);
    const refused = outcomes.filter(([offset]) => offset >= 60);
    expect(refused.every(([, status, code]) => status === 401 && code === 'ERR_TOKENSEC_DPOP_NONCE_STALE')).toBe(true);
    // The bound SECURITY.md states: nothing at or after T + 65 s.
    expect(outcomes.filter(([offset, status]) => offset >= 65 && status === 200)).toEqual([]);
  });

  it('the script ran in the last second of a window: its nonce is refused 31 s later', async () => {
    const start = Math.ceil(Date.now() / 30_000) * 30_000 + 60_000 + 29_000;
    const clock = fakeClock(start);
    const victim = await page();
    const ladder = await runScriptOnce(victim, '/api/me');
    const outcomes = await replayLadder(victim, '/api/me', ladder, clock, start);
    expect(outcomes.filter(([, status]) => status === 200).map(([offset]) => offset)).toEqual([0, 5, 10, 15, 20, 25, 30]);
  });

  it('with nonce: false (3.1’s default), the same ladder lasts the token’s whole life', async () => {
    const start = Math.ceil(Date.now() / 30_000) * 30_000 + 60_000;
    const clock = fakeClock(start);
    const victim = await page();
    const ladder = await runScriptOnce(victim, '/api/no-nonce');
    const outcomes = await replayLadder(victim, '/api/no-nonce', ladder, clock, start);
    expect(outcomes.every(([, status]) => status === 200)).toBe(true);
    expect(outcomes.at(-1)?.[0]).toBe(295);
  });
});
