import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sockets on loopback; the conformance checks wait for deadlines on purpose.
    testTimeout: 30_000,
  },
});
