import { createRequire } from 'node:module';
import { kotoError, type KotoError } from 'koto-voice';

// An optional dependency of koto-voice that is not installed (`npm install --omit=optional` leaves
// them out). Each plugin that loads one keeps this small copy: plugins share no code.

/** `pkg@range` as koto-voice declares it, so the command installs a version that fits. */
function specOf(pkg: string): string {
  try {
    const manifest = createRequire(import.meta.url)('koto-voice/package.json') as { optionalDependencies?: Record<string, string> };
    const range = manifest.optionalDependencies?.[pkg];
    return range ? `${pkg}@${range}` : pkg;
  } catch {
    return pkg;
  }
}

/** KOTO_ERR_DEPENDENCY_MISSING: what needs the package, the exact install command, and what works without it. */
export function missingPackage(plugin: string, pkg: string, feature: string, alternative?: string): KotoError {
  return kotoError(
    'KOTO_ERR_DEPENDENCY_MISSING',
    { feature, package: pkg, spec: specOf(pkg), alternative: alternative ? `; or ${alternative}` : '' },
    { plugin },
  );
}
