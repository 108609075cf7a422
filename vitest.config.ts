import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    // Tests start real workers on a 2-core machine: run files one at a time, and give each test
    // room; every blocking wait inside a test has its own, shorter watchdog with a message.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
