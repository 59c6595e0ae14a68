#!/usr/bin/env node
/**
 * Maps every test of an earlier tree (e.g. 3.0.0) to its place now: "old file › title → new file ›
 * title", so that a reorganisation of the tests can show that nothing was lost.
 *
 *   node scripts/test-map.mjs list <commit> <out.json>   the tests of <commit>, as `vitest list --json`
 *                                                       gives them (the commit is unpacked into a
 *                                                       temporary directory, built, and listed there)
 *   node scripts/test-map.mjs list . <out.json>          the tests of the working tree
 *   node scripts/test-map.mjs map <old.json> <new.json> [<out.md>]
 *                                                       the mapping, as a Markdown table, and the counts
 *
 * A test is found in its new place by the tables below: the files moved (an old file may have been
 * split over several) and the titles renamed; then by the same title anywhere. A test with no
 * place is listed as "not found" and makes the command fail.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(new URL('..', import.meta.url).pathname);

/** Where each test file went (issue 22: tests mirror src/ and client/). A file split over several lists each. */
export const MOVED = {
  'test/unit/handshake.test.ts': ['test/unit/server/handshake/middleware.test.ts'],
  'test/unit/hardening.test.ts': [
    'test/unit/server/handshake/hardening.test.ts',
    'test/unit/server/handshake/deadline.test.ts',
    'test/unit/server/handshake/no-store.test.ts',
    'test/unit/server/request-target.test.ts',
  ],
  'test/unit/steps.test.ts': ['test/unit/server/handshake/steps.test.ts'],
  'test/unit/observability.test.ts': ['test/unit/server/handshake/events.test.ts', 'test/unit/server/error-handler.test.ts'],
  'test/unit/options.test.ts': ['test/unit/server/handshake/options.test.ts'],
  'test/unit/leaks.test.ts': ['test/unit/server/handshake/leaks.test.ts', 'test/unit/server/crypto/primitives.test.ts'],
  'test/unit/tamper.test.ts': ['test/unit/server/handshake/tamper.test.ts'],
  'test/unit/protocol.test.ts': ['test/unit/server/crypto/primitives.test.ts'],
  'test/unit/dpop-handshake.test.ts': ['test/unit/server/dpop/handshake-proof.test.ts'],
  'test/unit/session-binding.test.ts': ['test/unit/server/dpop/session-binding.test.ts'],
  'test/unit/dpop-verify.test.ts': ['test/unit/server/dpop/verify.test.ts'],
  'test/unit/dpop-origin.test.ts': ['test/unit/server/dpop/middleware.test.ts'],
  'test/unit/dpop-events.test.ts': ['test/unit/server/dpop/events.test.ts'],
  'test/unit/stores.test.ts': ['test/unit/server/stores.test.ts'],
  'test/unit/binding-store.test.ts': ['test/unit/server/binding-store.test.ts'],
  'test/unit/initialize.test.ts': ['test/unit/server/initialize.test.ts'],
  'test/unit/dbsc.test.ts': ['test/unit/server/dbsc/dbsc.test.ts'],
  'test/unit/wire.test.ts': ['test/unit/protocol/wire.test.ts'],
  'test/unit/vectors.test.ts': ['test/unit/protocol/vectors.test.ts'],
  'test/unit/protocol-3.1.test.ts': ['test/unit/protocol/conformance.test.ts'],
  'test/unit/client-dpop.test.ts': ['test/unit/client/dpop.test.ts'],
  'test/unit/client-errors.test.ts': ['test/unit/client/errors.test.ts'],
  'test/unit/client-hardening.test.ts': ['test/unit/client/handshake.test.ts'],
  'test/unit/client-retries.test.ts': ['test/unit/client/retries.test.ts'],
  'test/unit/docs.test.ts': ['test/unit/docs/docs.test.ts'],
  'test/unit/dbsc-docs.test.ts': ['test/unit/docs/dbsc.test.ts'],
  'test/unit/readme-blocks.test.ts': ['test/unit/docs/readme-blocks.test.ts'],
  'test/unit/build-if-stale.test.ts': ['test/unit/scripts/build-if-stale.test.ts'],
};

/**
 * Titles renamed, as "describe > … > title" (what `vitest list` prints). A title given as a
 * RegExp source (starting with ^) renames every expansion of a parametrised test.
 */
export const RENAMED = [
  // 3.1 before issue 22 (budgets, engines and the spec's wording changed the titles).
  [
    'demo in Chromium > log in → handshake → protected API → token only in memory → log out → both refuse',
    'demo in Chromium > log in → CSRF → handshake → protected API → countdown → log out resets the steps; no errors, no aborted requests',
  ],
  [
    'demo in Chromium > fetches a new token before the old one expires',
    'demo in Chromium > the session fetches a new token before the old one expires',
  ],
  [/^size budget > (tokensec\.min\.m?js) is at most 3840 bytes min\+gzip$/, 'size budget > $1 is at most 4096 bytes min+gzip'],
  [
    'client() > serves the minified UMD bundle as JavaScript, without the dist-relative source map comment',
    'client() > serves the minified UMD bundle as JavaScript, byte for byte the file tokenSec.integrity() hashes',
  ],
  [
    /^(x25519|p256) > every bit flip in the server key, the IV and the ciphertext is refused with ERR_TOKENSEC_DECRYPTION_FAILED$/,
    '$1 > every bit flip in the server key, the IV and the ciphertext is refused with ERR_TOKENSEC_DECRYPTION_FAILED (a P-256 key no longer starting 04: MALFORMED_RESPONSE)',
  ],
  [
    'the DPoP vectors use the RFC 7515 appendix A.3 ES256 key, and one vector has no proof',
    'the DPoP vectors use the RFC 7515 appendix A.3 ES256 key, and one vector has no proof and no jkt field',
  ],
  [/^(.*) > client: request header and decryption of the response header$/, '$1 > client: request header and decryption of the response'],
  // issue 22: titles say what they test, not which version failed.
  [
    'safe methods fail closed > with csurf, a GET handshake got past the CSRF check and received a token; now it is refused',
    'safe methods fail closed > with csurf, which lets a GET pass its CSRF check, a GET handshake is refused',
  ],
  [
    /^every failure is a TokenSecError with a code > handshake\((.*)\) → ERR_TOKENSEC_INVALID_OPTIONS \(was a TypeError\)$/,
    'every failure is a TokenSecError with a code > handshake($1) → ERR_TOKENSEC_INVALID_OPTIONS, not a TypeError',
  ],
  [
    'every failure is a TokenSecError with a code > a response header of 200 KB → ERR_TOKENSEC_MALFORMED_RESPONSE, refused before decoding (was a RangeError)',
    'every failure is a TokenSecError with a code > a response header of 200 KB → ERR_TOKENSEC_MALFORMED_RESPONSE, refused before decoding (no RangeError)',
  ],
  [
    '10,000 handshakes at concurrency 100 on 127.0.0.1: all succeed, no unhandled rejections, memory settles',
    'up to 10,000 handshakes at concurrency 100 on 127.0.0.1 (120 s bound): every one succeeds, no unhandled rejections, memory settles',
  ],
  [
    'logout and login: the server unbinds > without the server step, the same session stays bound: 403 KEY_MISMATCH (what README 3.0 left users with)',
    'logout and login: the server unbinds > without the server step, the same session stays bound: 403 KEY_MISMATCH',
  ],
];

function renamed(name) {
  for (const [from, to] of RENAMED) {
    if (typeof from === 'string' ? from === name : from.test(name)) return typeof from === 'string' ? to : name.replace(from, to);
  }
  return name;
}

function list(commit, out) {
  let dir = ROOT;
  let temporary;
  if (commit !== '.') {
    temporary = dir = mkdtempSync(join(tmpdir(), 'tokensec-tests-'));
    execFileSync('sh', ['-c', `git -C "${ROOT}" archive "${commit}" | tar -x -C "${dir}"`], { stdio: 'inherit' });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    // Some test files load the built bundles while they are collected.
    execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: 'inherit' });
  }
  try {
    execFileSync('npx', ['vitest', 'list', `--json=${resolve(out)}`], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  } finally {
    if (temporary) rmSync(temporary, { recursive: true, force: true });
  }
}

/** [{ project, file (relative to the tree), name }] from a `vitest list --json` file. */
function read(path) {
  return JSON.parse(readFileSync(path, 'utf8')).map((t) => ({
    project: t.projectName,
    // Listed in another directory (a temporary checkout): the path inside the tree.
    file: t.file.slice(t.file.lastIndexOf('/test/') + 1),
    name: t.name,
  }));
}

function map(oldPath, newPath, outPath) {
  const before = read(oldPath);
  const after = read(newPath);
  const key = (file, name) => `${file}\u0000${name}`;
  // Several tests may share a file and name (a loop): each old one takes one new one.
  const left = new Map();
  for (const t of after) left.set(key(t.file, t.name), (left.get(key(t.file, t.name)) ?? 0) + 1);
  const byName = new Map();
  for (const t of after) byName.set(t.name, [...(byName.get(t.name) ?? []), t.file]);
  const take = (file, name) => {
    const k = key(file, name);
    if (!left.get(k)) return false;
    left.set(k, left.get(k) - 1);
    return true;
  };
  const rows = [];
  const lost = [];
  for (const t of before) {
    const files = [...(MOVED[t.file] ?? []), t.file];
    let found;
    // The renamed title first, then the title as it was (a tree listed before the rename).
    for (const name of new Set([renamed(t.name), t.name])) {
      const place = files.find((file) => take(file, name)) ?? (byName.get(name) ?? []).find((file) => take(file, name));
      if (place) {
        found = [t, place, name];
        break;
      }
    }
    if (found) rows.push(found);
    else lost.push(t);
  }
  const count = (tests) => {
    const by = {};
    for (const t of tests) by[t.project] = (by[t.project] ?? 0) + 1;
    return by;
  };
  const cell = (text) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [
    `# Where each test went`,
    '',
    `Made by \`node scripts/test-map.mjs map ${oldPath} ${newPath}\`.`,
    '',
    `| | before | now |`,
    `| --- | ---: | ---: |`,
    ...[...new Set([...before, ...after].map((t) => t.project))].map(
      (p) => `| ${p} | ${count(before)[p] ?? 0} | ${count(after)[p] ?? 0} |`,
    ),
    `| **all** | **${before.length}** | **${after.length}** |`,
    '',
    `Tests of before with a place now: ${rows.length}; without: ${lost.length}. Moved or renamed: ${rows.filter(([t, f, n]) => t.file !== f || t.name !== n).length}.`,
    '',
  ];
  if (lost.length) {
    lines.push('## Not found', '', '| file | title |', '| --- | --- |');
    for (const t of lost) lines.push(`| ${t.file} | ${cell(t.name)} |`);
    lines.push('');
  }
  lines.push('## Every test', '', '| before: file › title | now: file › title |', '| --- | --- |');
  for (const [t, file, name] of rows) {
    const now =
      t.file === file && t.name === name
        ? '(same)'
        : `${file === t.file ? '' : `${file} › `}${name === t.name ? '(same title)' : cell(name)}`;
    lines.push(`| ${t.file} › ${cell(t.name)} | ${now} |`);
  }
  const text = lines.join('\n') + '\n';
  if (outPath) writeFileSync(outPath, text);
  else process.stdout.write(text);
  console.error(`${before.length} tests before, ${after.length} now; ${lost.length} not found.`);
  if (lost.length || after.length < before.length) process.exitCode = 1;
}

const [command, ...args] = process.argv.slice(2);
if (command === 'list' && args.length === 2) list(args[0], args[1]);
else if (command === 'map' && args.length >= 2) map(args[0], args[1], args[2]);
else {
  console.error('usage: node scripts/test-map.mjs list <commit|.> <out.json> | map <old.json> <new.json> [<out.md>]');
  process.exitCode = 2;
}
