/**
 * The threat table is a claim per row: each row names the test that plays that attacker, and the
 * same table stands in README.md, SECURITY.md and docs/PROTOCOL.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

function threatTable(markdown: string): string[] {
  const start = markdown.indexOf('| attacker | what they get today | test |');
  expect(start, 'the threat table').toBeGreaterThan(-1);
  const lines = markdown.slice(start).split('\n');
  const end = lines.findIndex((line) => !line.trim().startsWith('|'));
  return lines.slice(2, end);
}

describe('threat table', () => {
  const docs = ['README.md', 'SECURITY.md', 'docs/PROTOCOL.md'];

  it.each(docs)('%s: every row names a test file that exists', (doc) => {
    const rows = threatTable(read(doc));
    expect(rows.length).toBeGreaterThanOrEqual(6);
    for (const row of rows) {
      const tests = [...row.matchAll(/`(test\/[^`]+\.test\.ts)`/g)].map((m) => m[1] ?? '');
      expect(tests.length, row).toBeGreaterThan(0);
      for (const file of tests) expect(existsSync(new URL(file, root)), file).toBe(true);
    }
  });

  it('is the same table in all three documents', () => {
    const [first, ...others] = docs.map((doc) => threatTable(read(doc)).join('\n'));
    for (const other of others) expect(other).toBe(first);
  });
});
