// Vite builds the SPA: `index.html` and `src/` in, `dist/` out (hashed files, no inline script).
import { defineConfig } from 'vite';

export default defineConfig({
  // Preact's JSX, compiled by Vite's own transform (no plugin needed).
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true },
});
