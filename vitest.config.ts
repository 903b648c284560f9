import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    alias: {
      // Plugins import the public API by package name, as third-party plugins do.
      'koto-voice/testing': fileURLToPath(new URL('./src/testing/index.ts', import.meta.url)),
      'koto-voice/x11': fileURLToPath(new URL('./src/x11/index.ts', import.meta.url)),
      'koto-voice/openai-wire': fileURLToPath(new URL('./plugins/openai-compatible/wire.ts', import.meta.url)),
      'koto-voice': fileURLToPath(new URL('./src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Type-level tests (expectTypeOf, @ts-expect-error) of the public plugin API: checked by tsc.
    typecheck: { enabled: true, include: ['test/types/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
    globalSetup: ['./test/global-setup.ts'],
    // Hang guards, not speed limits: CI runs on a loaded 2-core machine where real processes,
    // sockets and decoders take several times longer than on a quiet one.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Real sockets and child processes: keep parallelism modest on a 2-core machine.
    maxWorkers: 2,
  },
});
