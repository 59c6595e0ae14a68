/**
 * README's quick start shows the files `npm run quickstart` compiles and serves, byte for byte
 * (test/browser/quickstart.test.ts runs them in Chromium).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readmeBlocks } from '../../support/readme.js';

const read = (file: string) => readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');

describe('README quick start', () => {
  const blocks = readmeBlocks(read('README.md')).filter((b) => b.heading.endsWith('## Quick start'));

  it('shows examples/quickstart/server.ts and public/app.js as they are, and the command that runs them', () => {
    const shown = Object.fromEntries(blocks.filter((b) => b.attrs.file).map((b) => [b.attrs.file, b.code]));
    expect(Object.keys(shown)).toEqual(['examples/quickstart/server.ts', 'examples/quickstart/public/app.js']);
    for (const [file, code] of Object.entries(shown)) expect(code, file).toBe(read(file!));
    expect(blocks.some((b) => b.code.startsWith('npm run quickstart'))).toBe(true);
    expect(JSON.parse(read('package.json')).scripts.quickstart).toContain('examples/quickstart');
  });

  it('the quick start comes first: before every other section of the README', () => {
    expect(read('README.md').split(/^## /m)[1]).toMatch(/^Quick start\n/);
  });
});
