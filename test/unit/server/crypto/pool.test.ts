/**
 * The crypto pool (src/server/crypto/pool.ts) with the proof's signature job: with `workers`, a
 * handshake's proof is verified on a worker with the same answers, in the same order, as inline.
 */
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { openResponse } from '../../../../client/crypto.js';
import builtTokenSec from '../../../../dist/index.js';
import { listen, signedHandshake, TOKEN } from '../../../support/helpers.js';

describe('with workers, the proof signature is verified on a worker: the same answers as inline', () => {
  const SECRET = 'pool-proof-secret-0123456789';
  const make = (workers?: number) =>
    builtTokenSec.handshake({ payload: (_req, _res, { jkt }) => `${TOKEN}.${jkt}`, secret: SECRET, terminate: true, workers });
  // The middlewares are dist's, the test's proofs src's: one nonce key for both, as for two processes.
  process.env.TOKENSEC_NONCE_KEY = 'a nonce key the app and the test share, 32+ bytes';
  const pooled = make(1);
  const inline = make();
  const servers: Awaited<ReturnType<typeof listen>>[] = [];
  afterAll(async () => {
    delete process.env.TOKENSEC_NONCE_KEY;
    await pooled.close();
    await Promise.all(servers.map((s) => s.close()));
  });
  const start = async (middleware: ReturnType<typeof make>) => {
    const app = express();
    app.post('/token', middleware);
    app.use(builtTokenSec.errorHandler());
    const server = await listen(app);
    servers.push(server);
    return server.origin;
  };

  it('a valid proof: 200 and the payload; a forged signature, alone or with a wrong htm: the same 401, message and challenge', async () => {
    const origins = [await start(pooled), await start(inline)];
    const answers: unknown[] = [];
    for (const origin of origins) {
      const url = `${origin}/token`;
      const good = await signedHandshake(url, SECRET);
      const ok = await fetch(url, { method: 'POST', headers: good.headers });
      expect(ok.status).toBe(200);
      expect(await openResponse(crypto.subtle, good.keys, SECRET, good.target, ok.headers.get('x-tokensec-handshake') ?? '')).toBe(
        `${TOKEN}.${good.jkt}`,
      );
      const other = await signedHandshake(url, SECRET, { method: 'PUT' });
      const forge = (made: typeof good, from: typeof good) => {
        const [h, c] = made.proof!.split('.');
        return { ...made.headers, dpop: `${h}.${c}.${from.proof!.split('.')[2]}` };
      };
      const again = await signedHandshake(url, SECRET);
      for (const headers of [forge(again, good), forge(other, good)]) {
        const refused = await fetch(url, { method: 'POST', headers });
        answers.push([
          refused.status,
          refused.headers.get('www-authenticate'),
          refused.headers.get('tokensec-error'),
          await refused.json(),
        ]);
      }
    }
    const expected = [
      401,
      'DPoP error="invalid_dpop_proof", error_description="Invalid DPoP proof: the signature does not verify.", algs="ES256"',
      'ERR_TOKENSEC_DPOP_INVALID_PROOF',
      { code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF', message: 'Invalid DPoP proof: the signature does not verify.' },
    ];
    expect(answers).toEqual([expected, expected, expected, expected]);
  });
});
