/**
 * A replay store that lost its data says so (src/server/restart-guard.ts). Two app instances, each
 * with its own client, share a real redis-server that runs without persistence (`--save ''
 * --appendonly no`). Twelve API proofs are accepted; redis-server is killed and started again on
 * the same port, empty. Replaying the twelve, at either instance, is refused with 503
 * ERR_TOKENSEC_STORE_RESTARTED and a Retry-After (3.1.0 accepted all twelve again); a fresh proof
 * dated clockSkew seconds after the store noticed passes at both; once the window (maxAge +
 * clockSkew) has passed, the old proofs are simply too old. With node-redis and with ioredis.
 * Date is frozen (test/support/clock.ts) so that proofs and the server read the same time.
 */
import * as dpopPackage from 'dpop';
import express from 'express';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import tokenSec, { type DpopEvent } from '../../src/index.js';
import { fakeClock } from '../support/clock.js';
import { listen } from '../support/helpers.js';
import { startRedis, type RedisServer } from '../support/redis.js';

type Client = Parameters<typeof tokenSec.redisStore>[0]['client'];

const clients: { name: string; connect(url: string): Promise<{ client: Client; close(): Promise<unknown> }> }[] = [
  {
    name: 'node-redis',
    async connect(url) {
      const client = createClient({ url });
      client.on('error', () => {}); // a lost connection is expected here
      await client.connect();
      return { client, close: () => client.close() };
    },
  },
  {
    name: 'ioredis',
    async connect(url) {
      const client = new Redis(url);
      client.on('error', () => {});
      await new Promise<void>((resolve, reject) => client.once('ready', resolve).once('error', reject));
      return { client, close: async () => client.disconnect() };
    },
  },
];

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

const MAX_AGE = 60;
const CLOCK_SKEW = 5;

describe.each(clients)('$name', ({ connect }) => {
  it('proofs accepted before redis-server restarted empty are refused with 503 ERR_TOKENSEC_STORE_RESTARTED at every instance; fresh proofs pass clockSkew seconds after the notice', async () => {
    const clock = fakeClock(Math.floor(Date.now() / 1000) * 1000); // a whole second: Retry-After is then exactly clockSkew
    let redis: RedisServer = await startRedis();
    cleanups.push(() => redis.stop());
    const keyPair = await dpopPackage.generateKeyPair('ES256');
    const jkt = await dpopPackage.calculateThumbprint(keyPair.publicKey);
    const token = Buffer.from(JSON.stringify({ cnf: { jkt } })).toString('base64url');

    // Two instances of the app (two processes behind a load balancer), each with its own client.
    // Operators see the restart window in dpop()'s events (onEvent), each with its code.
    const events: DpopEvent[] = [];
    const instances: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { client, close } = await connect(redis.url);
      cleanups.push(close);
      const app = express();
      app.get(
        '/api/me',
        tokenSec.dpop({
          replayStore: tokenSec.redisStore({ client }),
          maxAge: MAX_AGE,
          clockSkew: CLOCK_SKEW,
          origin: 'https://api.example',
          verifyToken: (given) => JSON.parse(Buffer.from(given, 'base64url').toString()),
          onEvent: (event) => events.push(event),
          // This test is about the store: server nonces (the default) are off, so that proofs made
          // by the dpop package need no nonce round trip (nonces: test/attacks/pre-signed-proofs.test.ts).
          nonce: false,
        }),
        (_req, res) => res.json({ ok: true }),
      );
      app.use(tokenSec.errorHandler());
      const server = await listen(app);
      cleanups.push(server.close);
      instances.push(server.origin);
    }
    const proof = () => dpopPackage.generateProof(keyPair, 'https://api.example/api/me', 'GET', undefined, token);
    const send = async (at: string, dpop: string) => {
      const response = await fetch(`${at}/api/me`, {
        headers: { authorization: `DPoP ${token}`, dpop },
        signal: AbortSignal.timeout(10_000),
      });
      return {
        status: response.status,
        code: ((await response.json()) as { code?: string }).code,
        retryAfter: response.headers.get('retry-after'),
      };
    };
    const [a = '', b = ''] = instances;

    // A store used for the first time cannot tell a new Redis from one that lost its data: its
    // first use is the notice, and a proof dated then is refused, with when to retry.
    expect(await send(a, await proof())).toEqual({ status: 503, code: 'ERR_TOKENSEC_STORE_RESTARTED', retryAfter: String(CLOCK_SKEW) });
    clock.advance((CLOCK_SKEW + 1) * 1000);

    // Twelve proofs accepted, alternately at each instance; a replay is refused as such.
    const accepted: string[] = [];
    for (let i = 0; i < 12; i++) {
      const dpop = await proof();
      expect(await send(instances[i % 2]!, dpop)).toEqual({ status: 200, code: undefined, retryAfter: null });
      accepted.push(dpop);
    }
    expect((await send(b, accepted[0]!)).code).toBe('ERR_TOKENSEC_DPOP_REPLAYED_PROOF');

    // redis-server killed and started again on its port, without persistence: empty.
    clock.advance(2000);
    await redis.stop();
    redis = await startRedis(redis.port);

    // Until the clients have reconnected, a request gets 503 ERR_TOKENSEC_STORE_UNAVAILABLE; after
    // that, every one of the twelve, replayed at either instance, is refused: never 200.
    const replays: { status: number; code?: string | undefined; retryAfter: string | null }[] = [];
    for (const [i, dpop] of accepted.entries()) {
      let answer = await send(instances[i % 2]!, dpop);
      for (let attempt = 0; attempt < 100 && answer.code === 'ERR_TOKENSEC_STORE_UNAVAILABLE'; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        answer = await send(instances[i % 2]!, dpop);
      }
      replays.push(answer);
    }
    expect(replays.map((r) => [r.status, r.code])).toEqual(Array(12).fill([503, 'ERR_TOKENSEC_STORE_RESTARTED']));
    const restarted = events.filter((e) => e.code === 'ERR_TOKENSEC_STORE_RESTARTED');
    expect(restarted.length).toBeGreaterThanOrEqual(13); // the first use's notice and the twelve replays
    for (const event of restarted) expect([event.outcome, event.status, event.jkt]).toEqual(['failed', 503, jkt]);
    // A proof made now, at the notice, cannot be told from one made before it either.
    expect(await send(b, await proof())).toEqual({ status: 503, code: 'ERR_TOKENSEC_STORE_RESTARTED', retryAfter: String(CLOCK_SKEW) });

    // clockSkew seconds after the notice, fresh proofs pass at both instances. The old ones stay
    // refused: the store has recorded them since the restart, so now they are plain replays.
    clock.advance(CLOCK_SKEW * 1000);
    expect((await send(a, await proof())).status).toBe(200);
    expect((await send(b, await proof())).status).toBe(200);
    expect(await send(a, accepted[11]!)).toMatchObject({ status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' });

    // After one window, the old proofs are too old: the guard has nothing left to refuse.
    clock.advance((MAX_AGE + CLOCK_SKEW) * 1000);
    expect(await send(b, accepted[11]!)).toMatchObject({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
    expect((await send(b, await proof())).status).toBe(200);
  }, 60_000);
});
