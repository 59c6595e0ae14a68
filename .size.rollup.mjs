import terser from '@rollup/plugin-terser';
const minify = terser({ ecma: 2020, format: { comments: false }, compress: { passes: 3, unsafe_arrows: true } });
const footer = `if (typeof module === 'object' && module.exports) module.exports = TokenSec;
else if (typeof define === 'function' && define.amd) ['TokenSec','tokensec'].forEach(function (id) { define(id, [], function () { return TokenSec; }); });`;
export default {
  input: '.size-out/js/client/index.js',
  output: [{ format: 'iife', name: 'TokenSec', strict: false, footer, file: '.size-out/tokensec.min.js', plugins: [minify] }],
};
