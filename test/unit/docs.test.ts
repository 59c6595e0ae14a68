/**
 * The threat table is a claim per row: each row names the test that plays that attacker, and the
 * same table stands in README.md, SECURITY.md and docs/PROTOCOL.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

/** The table's rows, each as its trimmed cells (so that column padding does not matter). */
function threatTable(markdown: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => /^\|\s*attacker\s*\|\s*what they get today\s*\|\s*test\s*\|$/.test(line.trim()));
  expect(start, 'the threat table').toBeGreaterThan(-1);
  const rest = lines.slice(start + 2);
  const end = rest.findIndex((line) => !line.trim().startsWith('|'));
  return rest.slice(0, end === -1 ? undefined : end).map((line) =>
    line
      .split('|')
      .map((cell) => cell.trim())
      .join(' | '),
  );
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
