/**
 * An optional dependency of koto-voice that is not installed (`npm install --omit=optional`
 * leaves them out). Each plugin that loads one keeps this small copy: plugins share no code.
 */
export function isMissingPackage(err: unknown, pkg: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // The package itself, not a file inside it or a native binary that failed to load.
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((err as Error).message).includes(`'${pkg}'`);
}
