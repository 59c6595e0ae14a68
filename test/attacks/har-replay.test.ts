/**
 * Threat table, "holder of recorded headers and cookies": a HAR file (or a proxy's header log) of
 * one real handshake holds the session cookie, the CSRF token and the DPoP proof. Its holder lacks
 * the browser's DPoP key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: the demo is plain JavaScript, importing tokensec by package name
import { createDemoApp } from '../../examples/demo/server.mjs';
import { handshake, rotateDpopKey } from '../../client/index.js';
import { harHeader, type HarEntry } from '../support/attackers.js';
import { demoAgent } from '../support/demo-session.js';
import { TOKEN, csrfApp, defined, listen, visit } from '../support/helpers.js';

const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** Runs `work` while recording the handshake's request and response as a browser's HAR export would. */
async function recording(url: string, work: () => Promise<unknown>): Promise<HarEntry> {
  const entry: HarEntry = { request: { method: 'POST', url, headers: [] }, response: { status: 0, headers: [] } };
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    entry.request.headers = Object.entries(init?.headers ?? {}).map(([name, value]) => ({ name, value: String(value) }));
    entry.response = { status: response.status, headers: [...response.headers].map(([name, value]) => ({ name, value })) };
    return response;
  };
  try {
    await work();
  } finally {
    globalThis.fetch = realFetch;
  }
  return entry;
}

describe('with sessions bound to their DPoP key (express-session, as in the demo)', () => {
  let origin = '';
  beforeAll(async () => {
    const server = await listen(createDemoApp());
    servers.push(server);
    origin = server.origin;
  });

  it('a fresh handshake with the recorded cookie and CSRF token, and a key of its own: 403 ERR_TOKENSEC_DPOP_KEY_MISMATCH', async () => {
    const agent = demoAgent(origin);
    await agent.login();
    const url = `${origin}/api/token`;
    const har = await recording(url, () => handshake({ uri: url, csrfToken: agent.csrf(), headers: { cookie: agent.cookie() } }));
    expect(har.response.status).toBe(200);
    await rotateDpopKey(); // from here on, the HAR holder: it has everything recorded but the victim's key
    const error = await handshake({
      uri: url,
      csrfToken: defined(harHeader(har.request.headers, 'x-csrf-token'), 'CSRF token in the HAR'),
      headers: { cookie: defined(harHeader(har.request.headers, 'cookie'), 'cookie in the HAR') },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH', status: 403 });
  });

  it('replaying the recorded request itself: the proof was used once, 401 ERR_TOKENSEC_DPOP_REPLAYED_PROOF', async () => {
    const agent = demoAgent(origin);
    await agent.login();
    const url = `${origin}/api/token`;
    const har = await recording(url, () => handshake({ uri: url, csrfToken: agent.csrf(), headers: { cookie: agent.cookie() } }));
    const replay = await fetch(url, { method: 'POST', headers: Object.fromEntries(har.request.headers.map((h) => [h.name, h.value])) });
    expect(replay.status).toBe(401);
    expect((await replay.json()).code).toBe('ERR_TOKENSEC_DPOP_REPLAYED_PROOF');
  });
});

describe('without a session to bind the key to (csurf in cookie mode, no session store)', () => {
  it('remaining risk: the holder runs a fresh handshake and gets a token, bound to its own key', async () => {
    let boundTo: string | undefined;
    const { app } = csrfApp({ payload: (_req, _res, { jkt }) => ((boundTo = jkt), TOKEN) });
    const server = await listen(app);
    servers.push(server);
    const { cookie, csrfToken } = await visit(server.origin);
    const url = `${server.origin}/token`;
    const har = await recording(url, () => handshake({ uri: url, csrfToken, headers: { cookie } }));
    const victimKey = boundTo;
    const holder = await rotateDpopKey();
    const token = await handshake({
      uri: url,
      csrfToken: defined(harHeader(har.request.headers, 'x-csrf-token'), 'CSRF token'),
      headers: { cookie: defined(harHeader(har.request.headers, 'cookie'), 'cookie') },
    });
    expect(token).toBe(TOKEN);
    expect(boundTo).toBe(holder.thumbprint);
    expect(boundTo).not.toBe(victimKey);
  });
});
