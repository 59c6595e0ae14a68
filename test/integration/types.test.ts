/**
 * Type tests as a consumer sees the package: each project in test/types/ (see its README) is
 * compiled with skipLibCheck off against the built dist/, with this repository's TypeScript and
 * with TypeScript 5.0, the oldest README supports. Express 4 and 5, node16, nodenext and bundler
 * resolution, CommonJS and ES module consumers, with and without the DOM lib.
 */
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const root = new URL('../../', import.meta.url);
const projects = readdirSync(new URL('test/types/', root)).filter((name) => statSync(new URL(`test/types/${name}`, root)).isDirectory());
const compilers = [
  ['TypeScript (repository)', require.resolve('typescript/bin/tsc')],
  ['TypeScript 5.0 (oldest supported)', require.resolve('typescript-5.0/bin/tsc')],
] as const;

it('there are the four consumer projects', () => {
  expect(projects.sort()).toEqual(['browser-bundler', 'express4-node16', 'express5-nodenext', 'node-http-bundler']);
});

describe.each(compilers)('%s', (_, tsc) => {
  it.each(projects)(
    '%s compiles, and each @ts-expect-error meets its error',
    async (project) => {
      const result = await run(process.execPath, [tsc, '-p', `test/types/${project}`], { cwd: root }).then(
        ({ stdout }) => ({ code: 0, output: stdout }),
        (error: { code: number; stdout: string }) => ({ code: error.code, output: error.stdout }),
      );
      expect(result).toEqual({ code: 0, output: '' });
    },
    60_000,
  );
});
