import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sockets on loopback; the conformance checks wait for deadlines on purpose. A hang
    // guard, generous for a loaded CI machine.
    testTimeout: 120_000,
  },
});
