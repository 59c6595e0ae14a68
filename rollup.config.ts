import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import terser from '@rollup/plugin-terser';
import typescript from '@rollup/plugin-typescript';
import { defineConfig, type Plugin } from 'rollup';
import { dts } from 'rollup-plugin-dts';

/**
 * The classic-script build is an IIFE assigning `var TokenSec`, followed by this footer, rather
 * than Rollup's UMD: Rollup's UMD skips the global whenever `define.amd` exists, so a plain
 * <script> on a page that also loads RequireJS would get no `window.TokenSec`. Here the global
 * is always set; CommonJS gets module.exports; AMD gets two *named* modules, because an
 * anonymous define() from a plain <script> makes RequireJS throw "Mismatched anonymous define()".
 * 'TokenSec' is the id TokenSec 0.x documented; 'tokensec' matches the file name. The session
 * and sealed bundles (each the handshake, DPoP and a session in one file) register under their
 * own names ('tokensec-session', 'tokensec/session'; 'tokensec-sealed', 'tokensec/sealed'). In a
 * worker (the sealed bundle's second role) neither module nor define exists: only the global is set.
 * define(id, value) with an object for the value defines the module as that object (AMD), no factory needed.
 */
const footer = (ids: string[]) => `if (typeof module === 'object' && module.exports) module.exports = TokenSec;
else if (typeof define === 'function' && define.amd) ${JSON.stringify(ids).replace(/"/g, "'")}.map(function (id) { return define(id, TokenSec); });`;

/** dist/browser/*.js are CommonJS-compatible scripts inside a "type": "module" package. */
const markCommonJs: Plugin = {
  name: 'mark-commonjs',
  writeBundle() {
    mkdirSync('dist/browser', { recursive: true });
    writeFileSync('dist/browser/package.json', '{ "type": "commonjs" }\n');
  },
};

const minify = terser({ ecma: 2020, format: { comments: false }, compress: { passes: 3, unsafe_arrows: true } });

/**
 * No source maps for the browser builds: the readable .js and .mjs are the debuggable form (plain
 * JavaScript with its comments), and the minified files are served to browsers as they are, so
 * that their Subresource Integrity hash is the file's (no sourceMappingURL line to strip).
 */
/** One browser entry: UMD-like classic script and ES module, each plain and minified, and their declarations. */
function browserBuild(input: string, name: string, amdIds: string[]) {
  const script = { format: 'iife' as const, name: 'TokenSec', footer: footer(amdIds), strict: false };
  return [
    {
      input,
      plugins: [typescript({ tsconfig: 'client/tsconfig.json', noEmitOnError: true }), markCommonJs],
      // The IIFE drops its "use strict" directive (26 bytes gzipped, for the size budget): the code is
      // compiled from strict TypeScript and relies on no sloppy-mode behaviour. ESM is strict anyway.
      output: [
        { ...script, file: `dist/browser/${name}.js` },
        { ...script, file: `dist/browser/${name}.min.js`, plugins: [minify] },
        { file: `dist/browser/${name}.mjs`, format: 'es' as const },
        { file: `dist/browser/${name}.min.mjs`, format: 'es' as const, plugins: [minify] },
      ],
    },
    {
      // The declarations as one self-contained file per module format (.d.ts beside the CommonJS
      // script, .d.mts beside the ES module), so dist/ holds no second tree of src/ types.
      input,
      plugins: [dts({ tsconfig: 'client/tsconfig.json' })],
      output: [
        { file: `dist/browser/${name}.d.ts`, format: 'es' as const },
        { file: `dist/browser/${name}.d.mts`, format: 'es' as const },
      ],
    },
  ];
}

/**
 * The server's CommonJS entry, for `require('tokensec')` and TypeScript's node16 resolution in .cts
 * files. dist/index.cjs re-exports the ES module's own bindings (Node >= 20.19 can require() it),
 * so CommonJS and ES module callers share one instance (one replay store, one diagnostics
 * channel); it names each export, as `exports.x = …`, so that tools reading CommonJS statically
 * (and TypeScript's `export default` reading) see what is there. dist/index.d.cts is the server's
 * declarations in one file, read as CommonJS types.
 */
const commonJsEntry: Plugin = {
  name: 'commonjs-entry',
  async writeBundle() {
    rmSync('dist/.types', { recursive: true, force: true });
    const names = Object.keys(await import(pathToFileURL('dist/index.js').href));
    const lines = [
      "'use strict';",
      "// require('tokensec'): the ES module's own exports (Node >= 20.19), one instance for both module systems.",
      "const esm = require('./index.js');",
      "Object.defineProperty(exports, '__esModule', { value: true });",
      ...names.map((name) => `exports.${name} = esm.${name};`),
    ];
    writeFileSync('dist/index.cjs', lines.join('\n') + '\n');
  },
};

export default defineConfig([
  {
    // tsc's declarations (dist/.types) bundled into one file per module format: only the public
    // types, so consumers' compilers never see internal ones (some need TypeScript >= 5.7).
    input: 'dist/.types/index.d.ts',
    plugins: [dts(), commonJsEntry],
    output: [
      { file: 'dist/index.d.ts', format: 'es' },
      { file: 'dist/index.d.cts', format: 'es' },
    ],
  },
  ...browserBuild('client/index.ts', 'tokensec', ['TokenSec', 'tokensec']),
  ...browserBuild('client/session.ts', 'tokensec-session', ['tokensec-session', 'tokensec/session']),
  ...browserBuild('client/sealed.ts', 'tokensec-sealed', ['tokensec-sealed', 'tokensec/sealed']),
]);
