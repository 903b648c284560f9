import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKernel, KotoError, type Kernel, type KernelOptions } from '../../src/index.ts';

/** A temporary KOTO_HOME so tests never touch the real user's files. */
export function tempHome(prefix = 'koto-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A kernel with an in-code config, no config search, no built-ins unless asked, logs captured. */
export async function testKernel(
  config: Record<string, unknown>,
  options: Partial<KernelOptions> = {},
): Promise<{ kernel: Kernel; logs: string[] }> {
  const logs: string[] = [];
  const kernel = await createKernel({
    config,
    search: false,
    builtins: false,
    env: { KOTO_HOME: options.env?.KOTO_HOME ?? path.join(os.tmpdir(), 'koto-test-home') },
    logLevel: 'debug',
    logSink: (entry) => logs.push(`${entry.level} ${entry.scope} ${entry.message} ${entry.fields ? JSON.stringify(entry.fields) : ''}`),
    ...options,
  });
  return { kernel, logs };
}

/** The KotoError a promise rejects with (fails the test if it resolves or throws something else). */
export async function failure(promise: Promise<unknown>): Promise<KotoError> {
  try {
    await promise;
  } catch (err) {
    if (KotoError.is(err)) return err;
    throw err;
  }
  throw new Error('expected a KotoError');
}
