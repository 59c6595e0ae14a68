// `npm start`, `npm test` and `npm run bench` run this first: it runs `npm run build` only when
// dist/ is missing a file the package exports or is older than a file it is built from, so a
// start right after `npm install` (whose prepare script built dist/) does not build again.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What dist/ is built from: the sources and every configuration the build reads. */
export const INPUTS = ['src', 'client', 'rollup.config.ts', 'tsconfig.build.json', 'tsconfig.base.json', 'package.json'];

function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true }).flatMap((entry) => files(join(path, entry.name)));
}

/** Every file package.json's `exports` names (types and code), which the build must have written. */
export function outputs(root) {
  const { exports } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const found = new Set();
  const walk = (value) => {
    if (typeof value === 'string') {
      if (value.startsWith('./dist/')) found.add(join(root, value));
    } else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(exports);
  for (const file of files(join(root, 'dist', 'browser'))) found.add(file); // the bundles client() serves
  return [...found];
}

/** Why dist/ must be built, or undefined when it is up to date. */
export function staleReason(root) {
  const out = outputs(root);
  const missing = out.find((file) => !existsSync(file));
  if (missing) return `${relative(root, missing)} is missing`;
  const oldest = Math.min(...out.map((file) => statSync(file).mtimeMs));
  const newer = INPUTS.flatMap((input) => files(join(root, input))).find((file) => statSync(file).mtimeMs > oldest);
  if (newer) return `${relative(root, newer)} changed since the last build`;
  return undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('../', import.meta.url));
  const reason = staleReason(root);
  if (!reason) {
    console.log('dist/ is up to date (npm run build to rebuild it anyway)');
  } else {
    console.log(`dist/: ${reason}; building`);
    const { status } = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
    process.exit(status ?? 1);
  }
}
