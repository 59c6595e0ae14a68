/**
 * Statements in README.md about the tree and the Server example, checked against the tree and the
 * block: the Development table names files that exist, the Server example's environment variables
 * are the ones its text names, and the browser builds' source maps are described one way only.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readmeBlocks } from '../../support/readme.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The Development table's rows as [path cell, description cell]. */
function developmentRows(): [string, string][] {
  const section = readme.slice(readme.indexOf('\n## Development'));
  const table = section.split('\n').filter((line) => line.startsWith('| `'));
  return table.map((line) => {
    const [, path = '', description = ''] = line.split(/(?<!\\)\|/).map((cell) => cell.trim());
    return [path, description];
  });
}

describe('README.md, Development', () => {
  it('names only paths that exist, and each file it names is in its folder', () => {
    const rows = developmentRows();
    expect(rows.length).toBeGreaterThanOrEqual(15);
    for (const [paths, description] of rows) {
      const folders = [...paths.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
      for (const path of folders) expect(existsSync(join(root, path)), `README's Development table: ${path}`).toBe(true);
      const folder = folders[0] ?? '';
      if (!folder.endsWith('/')) continue;
      for (const [, file = ''] of description.matchAll(/`([\w.-]+\.ts)`/g))
        expect(existsSync(join(root, folder, file)), `README's Development table: ${folder}${file}`).toBe(true);
    }
  });

  it('lists every folder of src/server', () => {
    const listed = developmentRows().map(([path]) => path.replace(/`/g, ''));
    const folders = ['handshake', 'crypto', 'dpop', 'dbsc'].filter((name) => statSync(join(root, 'src/server', name)).isDirectory());
    for (const name of folders) expect(listed).toContain(`src/server/${name}/`);
  });

  it('says one thing about browser source maps: there are none, and the tarball has none (package.test.ts)', () => {
    expect(readme).toContain('The browser builds ship without source maps');
    expect(readme).not.toMatch(/\.mjs` \(ESM\) with source maps/);
    expect(readme).toContain('without source maps (the readable files are the debuggable form)');
  });
});

describe('README.md, Server', () => {
  it('names every environment variable the Server example reads, and counts them right', () => {
    const server = readmeBlocks().find((block) => block.attrs.name === 'server');
    expect(server).toBeDefined();
    const required = [...(server?.code ?? '').matchAll(/env\('(\w+)'\)/g)].map((m) => m[1] ?? '');
    expect(required.sort()).toEqual(['APP_ORIGIN', 'SESSION_SECRET', 'TOKEN_PRIVATE_KEY', 'TOKEN_PUBLIC_KEY']);
    const intro = readme.slice(readme.indexOf('\n## Server'), readme.indexOf('```ts name=server'));
    for (const name of required) expect(intro, name).toContain(`\`${name}\``);
    expect(intro).toContain('expects four environment\nvariables');
    // It prints its URL when it starts (test/integration/readme.test.ts reads what it prints).
    expect(server?.code).toMatch(
      /app\.listen\(port, '127\.0\.0\.1', \(\) =>\s+console\.log\(`Listening on http:\/\/127\.0\.0\.1:\$\{port\}\//,
    );
  });
});
