/**
 * Threat table, "active on-path where TLS ends": a proxy that can change requests sits between
 * the real browser client and the README's app (csurf, initialize, handshake). It needs nothing but
 * what passes through it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handshake } from '../../client/index.js';
import { rewritingProxy, type RewritingProxy } from '../support/attackers.js';
import { TOKEN, csrfApp, listen, visit } from '../support/helpers.js';

const INJECTED = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhdHRhY2tlciJ9.';

let app: Awaited<ReturnType<typeof listen>>;
let proxy: RewritingProxy;
beforeAll(async () => {
  app = await listen(csrfApp().app);
  proxy = await rewritingProxy(app.origin, INJECTED);
});
afterAll(async () => {
  await proxy.close();
  await app.close();
});

describe('an active intermediary where TLS ends', () => {
  it('today: swaps the browser key, reads the real token, and the page accepts a token of its choice', async () => {
    // The victim loads the page and runs the real client, all through the proxy.
    const { cookie, csrfToken } = await visit(proxy.origin);
    const received = await handshake({ uri: `${proxy.origin}/token`, csrfToken, headers: { cookie }, algorithm: 'x25519' });
    expect(proxy.stolen).toEqual([TOKEN]);
    expect(received).toBe(INJECTED);
  });

  it('without the proxy the same client gets the real token (the attack, not the setup, makes the difference)', async () => {
    const { cookie, csrfToken } = await visit(app.origin);
    expect(await handshake({ uri: `${app.origin}/token`, csrfToken, headers: { cookie }, algorithm: 'x25519' })).toBe(TOKEN);
  });
});
