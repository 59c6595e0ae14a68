/**
 * Threat table, "active on-path where TLS ends": a proxy that can change requests sits between
 * the real browser client and the demo app (express-session, csrf-sync, DPoP required, sessions
 * bound to their first key). It needs nothing but what passes through it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: the demo is plain JavaScript, importing tokensec by package name
import { createDemoApp } from '../../examples/demo/server.mjs';
import { TokenSecError, createDpopProof, getDpopKey, handshake } from '../../client/index.js';
import { rewritingProxy, type RewritingProxy } from '../support/attackers.js';
import { demoAgent } from '../support/demo-session.js';
import { listen } from '../support/helpers.js';

const INJECTED = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhdHRhY2tlciJ9.';

let app: Awaited<ReturnType<typeof listen>>;
const proxies: RewritingProxy[] = [];
beforeAll(async () => {
  app = await listen(createDemoApp());
});
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await app.close();
});

async function victimThrough(mode: 'swap-key' | 'own-proof' | 'forge-answer', firstDirect: boolean) {
  const proxy = await rewritingProxy(app.origin, INJECTED, mode);
  proxies.push(proxy);
  const agent = demoAgent(app.origin);
  await agent.login();
  const run = (origin: string) =>
    handshake({ uri: `${origin}/api/token`, csrfToken: agent.csrf(), headers: { cookie: agent.cookie() }, algorithm: 'x25519' }).catch(
      (error: unknown) => error,
    );
  if (firstDirect) expect(typeof (await run(app.origin))).toBe('string');
  return { proxy, result: await run(proxy.origin) };
}

describe('an active intermediary where TLS ends', () => {
  it('swapping the ephemeral key breaks the DPoP proof that commits to it: refused, nothing stolen', async () => {
    const { proxy, result } = await victimThrough('swap-key', false);
    // Refused twice: the client retries a refused proof once (its iat by the server's clock).
    expect(proxy.statuses).toEqual([401, 401]);
    expect(proxy.stolen).toEqual([]);
    expect(result).toBeInstanceOf(TokenSecError);
    expect(result).toMatchObject({ code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF', status: 401 });
  });

  it('replacing the proof with one of its own key, on a session already bound to the browser key: refused 403', async () => {
    const { proxy, result } = await victimThrough('own-proof', true);
    // First the nonce challenge (the browser has no nonce for the proxy's origin yet), then the refusal.
    expect(proxy.statuses).toEqual([401, 403]);
    expect(proxy.stolen).toEqual([]);
    expect(result).toMatchObject({ code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH', status: 403 });
  });

  it('remaining risk, trust on first use: at a session first handshake it binds its own key and gets a token only that key can use', async () => {
    const { proxy, result } = await victimThrough('own-proof', false);
    // First the nonce challenge (the browser has no nonce for the proxy's origin yet), then its own key bound.
    expect(proxy.statuses).toEqual([401, 200]);
    const [stolen] = proxy.stolen;
    const claims = JSON.parse(Buffer.from((stolen ?? '').split('.')[1] ?? '', 'base64url').toString());
    expect(claims.cnf.jkt).toBe(proxy.jkt); // bound to the intermediary's key, not the browser's
    expect(result).toBe(INJECTED); // and the page accepts what it injects
  });

  it('remaining risk, a forged answer: the page accepts a token of its choice (bound session or not), which the DPoP-protected API refuses', async () => {
    const { proxy, result } = await victimThrough('forge-answer', false);
    expect(proxy.stolen).toEqual([]);
    expect(result).toBe(INJECTED); // sealed to the browser's key with what the request carried
    const agent = demoAgent(app.origin);
    await agent.login();
    const key = await getDpopKey();
    const proof = await createDpopProof({ method: 'GET', url: `${app.origin}/api/me`, key, accessToken: INJECTED });
    const api = await fetch(`${app.origin}/api/me`, {
      headers: { authorization: `DPoP ${INJECTED}`, dpop: proof, cookie: agent.cookie() },
    });
    expect(api.status).toBe(401);
  });
});
