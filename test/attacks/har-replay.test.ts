/**
 * Threat table, "holder of recorded headers and cookies": a HAR file (or a proxy's header log) of
 * one real handshake holds the session cookie and the CSRF token. Its holder runs a fresh handshake
 * with them. The recorded response itself stays sealed (test/attacks/passive-observer.test.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { handshake } from '../../client/index.js';
import { harHeader, type HarEntry } from '../support/attackers.js';
import { TOKEN, csrfApp, defined, listen, visit } from '../support/helpers.js';

let app: Awaited<ReturnType<typeof listen>>;
beforeAll(async () => {
  app = await listen(csrfApp().app);
});
afterAll(() => app.close());

/** The victim's handshake, recorded as a browser's HAR export would record it. */
async function recordVictim(): Promise<HarEntry> {
  const { cookie, csrfToken } = await visit(app.origin);
  const entry: HarEntry = {
    request: { method: 'POST', url: `${app.origin}/token`, headers: [] },
    response: { status: 0, headers: [] },
  };
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    entry.request.headers = Object.entries(init?.headers ?? {}).map(([name, value]) => ({ name, value: String(value) }));
    entry.response = { status: response.status, headers: [...response.headers].map(([name, value]) => ({ name, value })) };
    return response;
  };
  try {
    expect(await handshake({ uri: `${app.origin}/token`, csrfToken, headers: { cookie } })).toBe(TOKEN);
  } finally {
    globalThis.fetch = realFetch;
  }
  return entry;
}

it('today: the holder of a HAR runs a fresh handshake with its cookie and CSRF token and receives a token', async () => {
  const har = await recordVictim();
  const cookie = defined(harHeader(har.request.headers, 'cookie'), 'cookie in the HAR');
  const csrfToken = defined(harHeader(har.request.headers, 'x-csrf-token'), 'CSRF token in the HAR');
  // A new key pair of the attacker's own; only the recorded credentials are reused.
  expect(await handshake({ uri: har.request.url, csrfToken, headers: { cookie } })).toBe(TOKEN);
});

it('replaying the recorded handshake header itself gets an answer sealed to the victim key, which the holder cannot open', async () => {
  const har = await recordVictim();
  const response = await fetch(har.request.url, {
    method: 'POST',
    headers: Object.fromEntries(har.request.headers.map((h) => [h.name, h.value])),
  });
  const sealed = defined(response.headers.get('x-tokensec-handshake'), 'answer');
  expect(sealed).not.toContain(TOKEN.slice(0, 16));
  expect(Buffer.from(sealed.split('.')[3] ?? '', 'base64url').toString('latin1')).not.toContain(TOKEN.slice(0, 16));
});
