import { kotoError, type KotoError } from './errors.ts';
import { ownPackage } from './version.ts';

/**
 * koto-voice's optional dependencies (the microphone recorder, the offline engine's bindings,
 * the X11 client): `npm install --omit=optional` leaves them out, and whatever needs one says
 * so with the exact install command. One helper for every plugin, in the public API, so no
 * plugin keeps its own copy.
 */

/** Whether `err` (from `import(pkg)`) says the package itself is not installed — not a file inside it, not a native binary that failed to load. */
export function isMissingModule(err: unknown, pkg: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((err as Error).message).includes(`'${pkg}'`);
}

export interface DependencyMissing {
  /** The plugin that needs it (the error carries it). */
  readonly plugin: string;
  /** The npm package, e.g. `koffi`. */
  readonly package: string;
  /** What needs it, as the user configured it: "the in-process pocketsphinx engine (`engine: library`)". */
  readonly feature: string;
  /** What works without it: "set `engine: auto` to use the pocketsphinx programs". */
  readonly alternative?: string | undefined;
}

/** KOTO_ERR_DEPENDENCY_MISSING: what needs the package, the exact install command (with koto-voice's declared range), what works without it. */
export function dependencyMissing(what: DependencyMissing): KotoError {
  const range = ownPackage().optionalDependencies?.[what.package];
  return kotoError(
    'KOTO_ERR_DEPENDENCY_MISSING',
    {
      feature: what.feature,
      package: what.package,
      spec: range ? `${what.package}@${range}` : what.package,
      alternative: what.alternative ? `; or ${what.alternative}` : '',
    },
    { plugin: what.plugin },
  );
}
