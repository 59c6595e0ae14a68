/**
 * `npm start`, `npm test` and `npm run bench` build dist/ only when it is stale
 * (scripts/build-if-stale.mjs): missing an exported file, or older than a source or build config.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain JavaScript script
import { staleReason } from '../../../scripts/build-if-stale.mjs';

const exportsMap = {
  '.': { import: { types: './dist/index.d.ts', default: './dist/index.js' } },
  './client': { default: { types: './dist/browser/tokensec.d.ts', default: './dist/browser/tokensec.js' } },
};
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** A package tree: each file written with the given age in seconds. */
function tree(files: Record<string, number>): string {
  const root = mkdtempSync(join(tmpdir(), 'tokensec-stale-'));
  dirs.push(root);
  const now = Date.now() / 1000;
  for (const [file, age] of Object.entries({ 'package.json': 100, ...files })) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), file === 'package.json' ? JSON.stringify({ exports: exportsMap }) : '');
    utimesSync(join(root, file), now - age, now - age);
  }
  return root;
}
const built = { 'dist/index.d.ts': 10, 'dist/index.js': 10, 'dist/browser/tokensec.d.ts': 10, 'dist/browser/tokensec.js': 10 };

describe('build-if-stale', () => {
  it('dist/ newer than every input: up to date, no build', () => {
    expect(staleReason(tree({ 'src/index.ts': 50, 'client/index.ts': 50, 'rollup.config.ts': 50, ...built }))).toBeUndefined();
  });

  it('no dist/ (a fresh clone installed with --ignore-scripts): build', () => {
    expect(staleReason(tree({ 'src/index.ts': 50 }))).toBe('dist/index.d.ts is missing');
  });

  it('a bundle missing: build', () => {
    const { 'dist/browser/tokensec.js': _, ...rest } = built;
    expect(staleReason(tree({ 'src/index.ts': 50, ...rest }))).toBe('dist/browser/tokensec.js is missing');
  });

  it.each(['src/server/handshake/middleware.ts', 'client/dpop.ts', 'rollup.config.ts', 'tsconfig.build.json'])(
    '%s edited after the build: build',
    (file) => {
      expect(staleReason(tree({ 'src/index.ts': 50, ...built, [file]: 1 }))).toBe(`${file} changed since the last build`);
    },
  );

  it('a test or an example edited after the build: no build (dist/ does not depend on them)', () => {
    expect(staleReason(tree({ 'src/index.ts': 50, ...built, 'test/unit/x.test.ts': 1, 'examples/demo/server.mjs': 1 }))).toBeUndefined();
  });
});
