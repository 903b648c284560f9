/**
 * Makes `koto-voice` and `koto-voice/testing` resolve to the TypeScript sources when a bench
 * runs under plain Node (type stripping), as they do in the tests (vitest aliases). Without it
 * the built-in plugins, which import `koto-voice` like a third-party package, would load the
 * compiled `dist/` copy next to the source kernel: two copies of the kernel in one process.
 *
 * Import this first. It must be evaluated before the kernel loads its plugins; plugins are
 * loaded with dynamic `import()`, so a hook registered here applies to them.
 */
import { registerHooks } from 'node:module';

const targets: Record<string, string> = {
  'koto-voice': new URL('../../src/index.ts', import.meta.url).href,
  'koto-voice/testing': new URL('../../src/testing/index.ts', import.meta.url).href,
};

registerHooks({
  resolve(specifier, context, nextResolve) {
    const target = targets[specifier];
    return nextResolve(target ?? specifier, context);
  },
});
