import { mkdirSync, writeFileSync } from 'node:fs';
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
 * 'TokenSec' is the id TokenSec 0.x documented; 'tokensec' matches the file name.
 */
const footer = `if (typeof module === 'object' && module.exports) module.exports = TokenSec;
else if (typeof define === 'function' && define.amd) ['TokenSec', 'tokensec'].forEach(function (id) { define(id, [], function () { return TokenSec; }); });`;

/** dist/browser/*.js are CommonJS-compatible scripts inside a "type": "module" package. */
const markCommonJs: Plugin = {
  name: 'mark-commonjs',
  writeBundle() {
    mkdirSync('dist/browser', { recursive: true });
    writeFileSync('dist/browser/package.json', '{ "type": "commonjs" }\n');
  },
};

const minify = terser({ ecma: 2020, format: { comments: false }, compress: { passes: 3, unsafe_arrows: true } });

export default defineConfig([
  {
    input: 'client/index.ts',
    plugins: [typescript({ tsconfig: 'client/tsconfig.json', noEmitOnError: true }), markCommonJs],
    // The IIFE drops its "use strict" directive (26 bytes gzipped, for the 2 KiB budget): the code is
    // compiled from strict TypeScript and relies on no sloppy-mode behaviour. ESM is strict anyway.
    output: [
      { file: 'dist/browser/tokensec.js', format: 'iife', name: 'TokenSec', footer, strict: false, sourcemap: true },
      { file: 'dist/browser/tokensec.min.js', format: 'iife', name: 'TokenSec', footer, strict: false, sourcemap: true, plugins: [minify] },
      { file: 'dist/browser/tokensec.mjs', format: 'es', sourcemap: true },
      { file: 'dist/browser/tokensec.min.mjs', format: 'es', sourcemap: true, plugins: [minify] },
    ],
  },
  {
    // The client's declarations as one self-contained file per module format (.d.ts beside the
    // CommonJS script, .d.mts beside the ES module), so dist/ holds no second tree of src/ types.
    input: 'client/index.ts',
    plugins: [dts({ tsconfig: 'client/tsconfig.json' })],
    output: [
      { file: 'dist/browser/tokensec.d.ts', format: 'es' },
      { file: 'dist/browser/tokensec.d.mts', format: 'es' },
    ],
  },
]);
