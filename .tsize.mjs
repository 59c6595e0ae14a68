import { minify } from 'terser';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
const opts = JSON.parse(process.argv[2] || '{}');
const dir = process.argv[3] || 'dist/browser';
for (const f of ['tokensec.js','tokensec.mjs','tokensec-session.js','tokensec-session.mjs','tokensec-sealed.js','tokensec-sealed.mjs']) {
  const code = readFileSync(`${dir}/${f}`, 'utf8');
  const o = structuredClone({ ecma: 2020, format: { comments: false }, compress: { passes: 3, unsafe_arrows: true }, ...opts });
  if (f.endsWith('.mjs')) o.module = opts.module ?? false;
  const r = await minify(code, o);
  process.stdout.write(`${f}: ${gzipSync(r.code).length}  `);
}
console.log();
