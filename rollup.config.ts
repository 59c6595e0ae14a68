import { mkdirSync, writeFileSync } from 'node:fs';
import terser from '@rollup/plugin-terser';
import typescript from '@rollup/plugin-typescript';
import { defineConfig, type Plugin } from 'rollup';

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

/** Browsers have no Buffer: drop the server's native base64url codec from the browser builds. */
const withoutNativeBase64url: Plugin = {
  name: 'without-native-base64url',
  resolveId: (source) => (source.endsWith('/native-base64url.js') ? '\0native-base64url' : null),
  load: (id) => (id === '\0native-base64url' ? 'export const nativeBase64url = undefined;' : null),
};

const minify = terser({ format: { comments: false }, compress: { passes: 2 } });

export default defineConfig({
  input: 'client/index.ts',
  plugins: [
    withoutNativeBase64url,
    typescript({ tsconfig: 'client/tsconfig.json', noEmitOnError: true }),
    markCommonJs,
  ],
  // The IIFE drops its "use strict" directive (26 bytes gzipped, for the 2 KiB budget): the code is
  // compiled from strict TypeScript and relies on no sloppy-mode behaviour. ESM is strict anyway.
  output: [
    { file: 'dist/browser/tokensec.js', format: 'iife', name: 'TokenSec', footer, strict: false, sourcemap: true },
    { file: 'dist/browser/tokensec.min.js', format: 'iife', name: 'TokenSec', footer, strict: false, sourcemap: true, plugins: [minify] },
    { file: 'dist/browser/tokensec.mjs', format: 'es', sourcemap: true },
    { file: 'dist/browser/tokensec.min.mjs', format: 'es', sourcemap: true, plugins: [minify] },
  ],
});
