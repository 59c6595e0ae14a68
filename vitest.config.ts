import { defineConfig } from 'vitest/config';

// Five projects: `npm test` runs them all; `npm run test:unit` is the fast loop (no Chromium, no
// real servers other than the app under test, no load).
const project = (name: string, include: string[], extra: { testTimeout?: number; fileParallelism?: boolean } = {}) => ({
  extends: true as const,
  test: { name, include, ...extra },
});

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // Catch a stray promise from the middleware instead of letting it pass silently.
    dangerouslyIgnoreUnhandledErrors: false,
    projects: [
      project('unit', ['test/unit/**/*.test.ts']),
      project('integration', ['test/integration/**/*.test.ts', 'test/attacks/**/*.test.ts']),
      // Each browser test file runs its tests in Chromium, then Firefox, then WebKit (test/support/engines.ts);
      // a WebKit context is a MiniBrowser of its own, which takes seconds to start on a busy machine.
      project('browser', ['test/browser/**/*.test.ts'], { testTimeout: 60_000 }),
      project('stress', ['test/stress/**/*.test.ts']),
      // Model-based tests of the session lifecycle (issue 29): a fixed seed here, longer in `npm run test:model`.
      project('model', ['test/model/**/*.test.ts']),
    ],
  },
});
