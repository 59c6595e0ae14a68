/**
 * README's DBSC block is the app the Chromium test runs (test/browser/fixtures/dbsc/app.mts), byte
 * for byte, and docs/DBSC.md names every DBSC error code TokenSec has.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (file: string) => readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');

describe('DBSC docs', () => {
  it('README’s "Device-bound sessions" block is the Chromium test’s app', () => {
    const readme = read('README.md');
    const section = readme.slice(readme.indexOf('### Device-bound sessions (DBSC)'));
    const block = /```ts[^\n]*\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBe(read('test/browser/fixtures/dbsc/app.mts'));
  });

  it('docs/DBSC.md names every ERR_TOKENSEC_DBSC_ code', () => {
    const codes = [...read('src/protocol/errors.ts').matchAll(/'(ERR_TOKENSEC_DBSC_[A-Z_]+)'/g)].map((m) => m[1]);
    expect(codes.length).toBeGreaterThanOrEqual(5);
    const doc = read('docs/DBSC.md');
    for (const code of codes) expect(doc).toContain(code);
  });
});
