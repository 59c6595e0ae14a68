import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // Catch a stray promise from the middleware instead of letting it pass silently.
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
