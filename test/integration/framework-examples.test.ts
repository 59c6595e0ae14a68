/**
 * README's "Fastify" and "Restify" blocks are examples/frameworks/fastify.mjs and restify.mjs,
 * byte for byte, and each app runs here on 127.0.0.1 as a page would use it: the session and CSRF
 * cookies, a login, the handshake (run by the browser client in Node), then the API through
 * tokenSec.dpop(); and the refusals: no login, no CSRF token, a copied token.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createDpopProof, handshake } from '../../client/index.js';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

/** The first js block after a README heading. */
function readmeBlock(heading: string): string | undefined {
  const readme = read('README.md');
  const at = readme.indexOf(`\n${heading}\n`);
  return at < 0 ? undefined : /```js[^\n]*\n([\s\S]*?)```/.exec(readme.slice(at))?.[1];
}

type Start = () => Promise<{ origin: string; close: () => Promise<unknown> }>;

const examples: [string, string, Start][] = [
  [
    '### Fastify',
    'examples/frameworks/fastify.mjs',
    async () => {
      // @ts-expect-error: the example is plain JavaScript, importing tokensec by package name
      const { default: fastify } = await import('../../examples/frameworks/fastify.mjs');
      await fastify.listen({ port: 0, host: '127.0.0.1' });
      const { port } = fastify.server.address() as AddressInfo;
      return { origin: `http://127.0.0.1:${port}`, close: () => fastify.close() };
    },
  ],
  [
    '### Restify',
    'examples/frameworks/restify.mjs',
    async () => {
      // @ts-expect-error: the example is plain JavaScript, importing tokensec by package name
      const { default: server } = await import('../../examples/frameworks/restify.mjs');
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      return { origin: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    },
  ],
];

/** A cookie jar over fetch: what a browser would send back to this origin. */
function browserLike(origin: string) {
  const jar = new Map<string, string>();
  const cookie = () => [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
  const keep = (response: Response) => {
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(';')[0] ?? '';
      jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
    }
    return response;
  };
  return {
    cookie,
    csrfToken: () => decodeURIComponent(jar.get('tokensec') ?? ''),
    send: async (path: string, init: RequestInit = {}) =>
      keep(await fetch(`${origin}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), cookie: cookie() } })),
    login: (user: string, csrfToken: string) =>
      fetch(`${origin}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken, cookie: cookie() },
        body: JSON.stringify({ user }),
      }).then(keep),
  };
}

describe.each(examples)('README %s', (heading, file, start) => {
  it(`is ${file}, byte for byte`, () => {
    expect(readmeBlock(heading)).toBe(read(file));
  });

  it('runs: login, handshake with the CSRF token, API call with DPoP; refuses no login, no CSRF token and a copied token', async () => {
    const { origin, close } = await start();
    try {
      const browser = browserLike(origin);
      // A page load (a browser's navigation accepts HTML): initialize() hands the CSRF token over in its cookie.
      expect(await (await browser.send('/me', { headers: { accept: 'text/html,*/*;q=0.8' } })).json()).toEqual({ user: null });
      expect(browser.csrfToken()).not.toBe('');
      const client = await browser.send('/tokensec.js');
      expect(client.status).toBe(200);
      expect(client.headers.get('content-type')).toMatch(/^text\/javascript/);
      expect(await client.text()).toContain('TokenSec');

      // Not logged in yet: no token.
      const early = await handshake({
        uri: `${origin}/token`,
        csrfToken: browser.csrfToken(),
        headers: { cookie: browser.cookie() },
      }).catch((e: unknown) => e);
      expect(early).toMatchObject({ status: 401 });

      expect((await browser.login('alice', 'a-forged-csrf-token')).status).toBe(403);
      const before = browser.csrfToken();
      expect((await browser.login('alice', browser.csrfToken())).status).toBe(200);
      expect(browser.csrfToken()).not.toBe(before); // the login's answer carries the new session's CSRF token

      const refused = await handshake({
        uri: `${origin}/token`,
        csrfToken: 'a-forged-csrf-token',
        headers: { cookie: browser.cookie() },
      }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ status: 403 });
      const token = await handshake({ uri: `${origin}/token`, csrfToken: browser.csrfToken(), headers: { cookie: browser.cookie() } });
      const url = `${origin}/api/me`;
      const ok = await fetch(url, {
        headers: { authorization: `DPoP ${token}`, dpop: await createDpopProof({ method: 'GET', url, accessToken: token }) },
      });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ user: 'alice' });
      const copied = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(copied.status).toBe(401);
      expect(await copied.json()).toMatchObject({ code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });
    } finally {
      await close();
    }
  });
});
