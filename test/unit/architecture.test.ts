/**
 * The shape of the code: no import cycle in src/ and client/, and the tree drawn in
 * docs/ARCHITECTURE.md ("The tree") is the tree on disk, file for file.
 *
 * Every import counts, type-only ones too: `import type` is erased from the JavaScript, but a
 * cycle of types is still two modules that cannot be read (or moved) one without the other. Only
 * static specifiers are read (`import … from`, `export … from`, `import '…'`); the code has no
 * dynamic import of its own modules.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const FOLDERS = ['src', 'client'];

/** Every file under `folder`, as a path relative to the repository with `/` separators. */
function filesUnder(folder: string): string[] {
  return readdirSync(join(root, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

/** The relative modules a TypeScript file imports or re-exports, as repository paths of .ts files. */
function importsOf(file: string, source: string): string[] {
  const specifiers = [...source.matchAll(/^\s*(?:import|export)\b[\w\s{},*$]*?['"](\.{1,2}\/[^'"]+)['"]/gm)].map((m) => m[1] ?? '');
  return specifiers.map((specifier) => posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.js$/, '.ts'));
}

/** Each import cycle once, as the list of files around it (first file repeated at the end). */
function importCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string): void => {
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      const at = path.indexOf(next);
      if (at !== -1) cycles.push([...path.slice(at), next]);
      else if (!done.has(next)) visit(next);
    }
    path.pop();
    done.add(file);
  };
  for (const file of graph.keys()) if (!done.has(file)) visit(file);
  return cycles;
}

/**
 * The files drawn in the ```text block under "## The tree": one entry per line, two spaces of
 * indentation per level, a folder ending in `/`, a file's description after two or more spaces.
 */
function treeOf(markdown: string): string[] {
  const section = markdown.split(/^## /m).find((part) => part.startsWith('The tree\n'));
  const block = section && /```text\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('docs/ARCHITECTURE.md has no ```text block under "## The tree"');
  const files: string[] = [];
  const folders: string[] = [];
  for (const line of block.split('\n')) {
    if (line.trim() === '') continue;
    const indent = /^ */.exec(line)?.[0].length ?? 0;
    const name = line.trim().split(/ {2,}/)[0] ?? '';
    if (indent % 2 !== 0 || indent / 2 > folders.length) throw new Error(`docs/ARCHITECTURE.md, tree line "${line}": bad indentation`);
    folders.length = indent / 2;
    if (name.endsWith('/')) folders.push(name.slice(0, -1));
    else files.push([...folders, name].join('/'));
  }
  return files.sort();
}

describe('architecture', () => {
  const files = FOLDERS.flatMap(filesUnder);

  it('no import cycle in src/ and client/ (type-only imports included)', () => {
    const graph = new Map(
      files.filter((file) => file.endsWith('.ts')).map((file) => [file, importsOf(file, readFileSync(join(root, file), 'utf8'))]),
    );
    // Every relative import names a file that exists: a cycle check over missing files would prove nothing.
    for (const [file, imports] of graph) for (const target of imports) expect(graph.has(target), `${file} imports ${target}`).toBe(true);
    expect(importCycles(graph).map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it('the cycle finder finds a cycle, a type-only one too', () => {
    const source = (imports: string[]) => imports.map((name, i) => `import ${i ? 'type ' : ''}{ x${i} } from '${name}';`).join('\n');
    expect(importsOf('src/server/a.ts', source(['./b.js', '../protocol/c.js']))).toEqual(['src/server/b.ts', 'src/protocol/c.ts']);
    expect(importsOf('src/a.ts', "export type { X } from './b.js';\nimport './c.js';\nconst y = 'from ./d.js';")).toEqual([
      'src/b.ts',
      'src/c.ts',
    ]);
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(importCycles(graph)).toEqual([['a', 'b', 'c', 'a']]);
  });

  it("docs/ARCHITECTURE.md's tree lists every file of src/ and client/, and only those", () => {
    const drawn = treeOf(readFileSync(join(root, 'docs/ARCHITECTURE.md'), 'utf8'));
    expect({
      missingFromDoc: files.filter((file) => !drawn.includes(file)),
      notOnDisk: drawn.filter((file) => !files.includes(file)),
    }).toEqual({ missingFromDoc: [], notOnDisk: [] });
  });

  it('reads the tree as drawn', () => {
    const doc = '## The tree\n\n```text\nsrc/\n  index.ts        entry\n  server/\n    a.ts  A\n  b.ts\nclient/\n  c.ts\n```\n## Next\n';
    expect(treeOf(doc)).toEqual(['client/c.ts', 'src/b.ts', 'src/index.ts', 'src/server/a.ts']);
    expect(() => treeOf('## Other\n')).toThrow(/no ```text block/);
  });
});
