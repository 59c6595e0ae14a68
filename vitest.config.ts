import { defineConfig } from 'vitest/config';

// Four projects: `npm test` runs them all; `npm run test:unit` is the fast loop (no Chromium, no
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
      project('browser', ['test/browser/**/*.test.ts']),
      project('stress', ['test/stress/**/*.test.ts']),
    ],
  },
});
