import { readFileSync } from 'node:fs';

// package.json sits two levels up from both src/kernel and dist/src/kernel's parent; find it by walking.
function readVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'koto-voice' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0';
}

export const KOTO_VERSION = readVersion();
