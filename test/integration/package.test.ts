/** The built package as users consume it: dist/, not src/. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN, csrfApp, listen, visit } from '../support/helpers.js';

const require = createRequire(import.meta.url);
type Client = typeof import('../../client/index.js');

describe('browser bundles, run in Node against a listening app', () => {
  let server: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    server = await listen(csrfApp().app);
  });
  afterAll(() => server.close());

  const builds: [string, () => Promise<Client>][] = [
    ['UMD, minified, via require()', async () => require('../../dist/browser/tokensec.min.js')],
    ['UMD, readable, via require()', async () => require('../../dist/browser/tokensec.js')],
    ['ESM, minified, via import', () => import('../../dist/browser/tokensec.min.mjs' as string)],
    ['ESM, readable, via import', () => import('../../dist/browser/tokensec.mjs' as string)],
  ];
  it.each(builds)('%s completes a handshake with each algorithm', async (_, load) => {
    const TokenSec = await load();
    expect(Object.keys(TokenSec).sort()).toEqual([
      'TokenSecError',
      'createDpopProof',
      'deleteDpopKey',
      'getDpopKey',
      'handshake',
      'rotateDpopKey',
    ]);
    for (const algorithm of ['x25519', 'p256'] as const) {
      const { cookie, csrfToken } = await visit(server.origin);
      expect(await TokenSec.handshake({ uri: `${server.origin}/token`, csrfToken, headers: { cookie }, algorithm })).toBe(TOKEN);
    }
    const error = await TokenSec.handshake({ uri: `${server.origin}/token` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenSec.TokenSecError);
    expect(error).toMatchObject({ code: 'ERR_TOKENSEC_NO_SECRET' });
  });
});

describe('the server package', () => {
  const node = (code: string, type: 'commonjs' | 'module') =>
    execFileSync(process.execPath, [`--input-type=${type}`, '-e', code], {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
    }).trim();

  it('imports by package name, as a default object and by name', () => {
    const out = node(
      `import tokenSec, { initialize, handshake, client, TokenSecError } from 'tokensec';
       console.log([typeof tokenSec.initialize, tokenSec.handshake === handshake, typeof client, typeof initialize, typeof TokenSecError].join())`,
      'module',
    );
    expect(out).toBe('function,true,function,function,function');
  });

  it('requires from CommonJS (Node >= 20.19 loads ES modules with require)', () => {
    const out = node(
      `const tokenSec = require('tokensec'); console.log(typeof tokenSec.initialize, typeof tokenSec.handshake, typeof tokenSec.default.client)`,
      'commonjs',
    );
    expect(out).toBe('function function function');
  });

  it('require() and import give the same instance (no dual-package copy): dist/index.cjs hands over the ES module', () => {
    const out = node(
      `import { createRequire } from 'node:module';
       import * as imported from 'tokensec';
       const required = createRequire(import.meta.url)('tokensec');
       console.log(createRequire(import.meta.url).resolve('tokensec').split('/').pop(), required.handshake === imported.handshake, required.TokenSecError === imported.TokenSecError)`,
      'module',
    );
    expect(out).toBe('index.cjs true true');
  });

  it.each([
    ['client', 'tokensec'],
    ['session', 'tokensec-session'],
    ['sealed', 'tokensec-sealed'],
  ])('resolves tokensec/%s to the browser builds', (entry, file) => {
    expect(node(`console.log(require.resolve('tokensec/${entry}'))`, 'commonjs')).toMatch(new RegExp(`dist/browser/${file}\\.js$`));
    expect(node(`console.log(import.meta.resolve('tokensec/${entry}'))`, 'module')).toMatch(new RegExp(`dist/browser/${file}\\.mjs$`));
  });

  it.each(['tokensec-session', 'tokensec-sealed'])('%s exports the handshake bundle and session()', async (file) => {
    const bundle = require(`../../dist/browser/${file}.min.js`);
    const esm = await import(`../../dist/browser/${file}.min.mjs`);
    const names = ['TokenSecError', 'createDpopProof', 'deleteDpopKey', 'getDpopKey', 'handshake', 'rotateDpopKey', 'session'];
    expect(Object.keys(bundle).sort()).toEqual(names);
    expect(Object.keys(esm).sort()).toEqual(names);
  });
});

describe('the tarball', () => {
  it('ships what helps users: server source maps that carry their sources, no browser maps, package metadata', () => {
    const [pack] = JSON.parse(
      execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
        cwd: new URL('../..', import.meta.url),
        encoding: 'utf8',
      }),
    ) as { files: { path: string }[] }[];
    const files = (pack?.files ?? []).map((f) => f.path);
    expect(files).toContain('CHANGELOG.md');
    expect(files.filter((f) => f.startsWith('dist/browser/') && f.endsWith('.map'))).toEqual([]);
    // One bundled declaration file per module format for the server: no tree of internal types.
    expect(files.filter((f) => /\.d\.c?ts$/.test(f) && !f.startsWith('dist/browser/')).sort()).toEqual([
      'dist/index.d.cts',
      'dist/index.d.ts',
    ]);
    const maps = files.filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(new URL(`../../${map}`, import.meta.url), 'utf8')) as {
        sources: string[];
        sourcesContent?: string[];
      };
      expect(sourcesContent?.length, map).toBe(sources.length);
    }
    const pkg = require('../../package.json') as Record<string, unknown>;
    expect(Object.keys(pkg)).toEqual(expect.arrayContaining(['repository', 'homepage', 'bugs']));
  });
});

describe('size budget', () => {
  const gzipped = async (file: string) => {
    const { readFileSync } = await import('node:fs');
    const { gzipSync } = await import('node:zlib');
    return gzipSync(readFileSync(new URL(`../../dist/browser/${file}`, import.meta.url))).length;
  };
  // 2 KiB in 2.0.0. The hardening of the threat-model issue (timeout, AbortSignal, strict parsing,
  // HKDF as two HMACs) cost about 400 bytes, and DPoP (a non-extractable key in IndexedDB, proofs
  // for the handshake and API calls) about 1,300. Key integrity in 3.1 (a checked key record, a
  // new key made for binding under a Web Lock, retries for a new key, a nonce and the server's
  // clock, the server's error code) about 330: the budget is 4 KiB.
  it.each(['tokensec.min.js', 'tokensec.min.mjs'])('%s is at most 4096 bytes min+gzip', async (file) => {
    expect(await gzipped(file)).toBeLessThanOrEqual(4096);
  });
  // The session bundle, handshake and DPoP included: 6 KiB.
  it.each(['tokensec-session.min.js', 'tokensec-session.min.mjs'])('%s is at most 6144 bytes min+gzip', async (file) => {
    expect(await gzipped(file)).toBeLessThanOrEqual(6144);
  });
  // The sealed bundle is the session and both sides of its worker protocol in one file: 6.5 KiB.
  it.each(['tokensec-sealed.min.js', 'tokensec-sealed.min.mjs'])('%s is at most 6656 bytes min+gzip', async (file) => {
    expect(await gzipped(file)).toBeLessThanOrEqual(6656);
  });
});
