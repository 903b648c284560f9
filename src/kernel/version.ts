import { readFileSync } from 'node:fs';

export interface OwnPackage {
  readonly name?: string;
  readonly version?: string;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
}

let own: OwnPackage | undefined;

/** koto-voice's own package.json: two levels up from src/kernel, three from dist/src/kernel; read once. */
export function ownPackage(): OwnPackage {
  if (own) return own;
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as OwnPackage;
      if (pkg.name === 'koto-voice') return (own = pkg);
    } catch {
      // try the next candidate
    }
  }
  return (own = {});
}

export const KOTO_VERSION = ownPackage().version ?? '0.0.0';
