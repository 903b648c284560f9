import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * CLI tests run the real `koto` bin, which runs the compiled dist: build it once per run.
 * Type errors are reported by the separate typecheck step; tsc still emits, so tests run.
 */
export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' });
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? '');
    process.stderr.write(`warning: tsc reported errors while building dist for the CLI tests:\n${out.slice(0, 2000)}\n`);
  }
}
