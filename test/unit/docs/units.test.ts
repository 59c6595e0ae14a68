/** docs/UNITS.md: every option whose TSDoc says seconds or milliseconds is in the table with that unit. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** `name unit` for each optional number whose TSDoc starts with "Seconds" or "Milliseconds". */
function documentedUnits(): Set<string> {
  const found = new Set<string>();
  for (const file of [...sources('src'), ...sources('client')]) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const [, unit, name] of text.matchAll(/\/\*\*[\s*]*(Seconds|Milliseconds)\b(?:(?!\*\/)[\s\S])*\*\/\s*(\w+)\?: number/g))
      found.add(`${name} ${unit === 'Seconds' ? 'seconds' : 'milliseconds'}`);
  }
  return found;
}

/** `name unit` for each row of docs/UNITS.md's table (`nonce.window` as `window`). */
function tableUnits(): Set<string> {
  const rows = readFileSync(join(root, 'docs/UNITS.md'), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('| `'));
  return new Set(
    rows
      .map((row) => row.split('|').map((cell) => cell.trim()))
      .map(([, option = '', unit]) => `${option.replace(/`/g, '').split('.').at(-1)} ${unit}`),
  );
}

describe('docs/UNITS.md', () => {
  it('lists every option documented in seconds or milliseconds, with that unit, and no other', () => {
    const documented = documentedUnits();
    const table = tableUnits();
    expect(documented.size).toBeGreaterThanOrEqual(10);
    for (const entry of documented) expect(table, `docs/UNITS.md lacks ${entry}`).toContain(entry);
    for (const entry of table)
      if (/seconds|milliseconds/.test(entry)) expect(documented, `no option documented as ${entry}`).toContain(entry);
  });

  it('README links to it', () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('(docs/UNITS.md)');
  });
});
