/**
 * docs/PRODUCTION.md's app is the one test/integration/production-outage.test.ts runs: its first
 * ```js block is test/integration/fixtures/production-server.mjs below the marker line, word for
 * word, but for the import of TokenSec (the package's name in the guide, the build in the fixture).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (file: string) => readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');

describe('docs/PRODUCTION.md', () => {
  it('shows the app the outage test runs', () => {
    const guide = /```js\n([\s\S]*?)```/.exec(read('docs/PRODUCTION.md'))?.[1];
    const fixture = read('test/integration/fixtures/production-server.mjs').split('// --- docs/PRODUCTION.md ---\n')[1];
    expect(fixture).toBeDefined();
    expect(guide).toBe(fixture?.replace("from '../../../dist/index.js';", "from 'tokensec';"));
  });

  it('is linked from README "Stores"', () => {
    const stores =
      read('README.md')
        .split(/^### Stores$/m)[1]
        ?.split(/^### /m)[0] ?? '';
    expect(stores).toContain('(docs/PRODUCTION.md)');
  });
});
