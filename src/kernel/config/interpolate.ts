import { kotoError } from '../errors.ts';

/** Keys whose values are credentials: redacted in output, collected for log scrubbing. */
export const SECRET_KEY = /(api[-_]?key|secret|password|passwd|authorization|credential|cookie|token$)/i;

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` (and `${VAR:-default}`) in every string of the config. A missing variable
 * without a default is an error naming the variable and the key path, never an empty string
 * that would later surface as a confusing 401.
 */
export function interpolateEnv(
  data: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  file: string,
): { value: Record<string, unknown>; secrets: string[] } {
  const secrets = new Set<string>();

  const visit = (node: unknown, keyPath: string[]): unknown => {
    if (typeof node === 'string') {
      const out = node.replace(PLACEHOLDER, (_, name: string, fallback: string | undefined) => {
        const found = env[name];
        if (found !== undefined && found !== '') return found;
        if (fallback !== undefined) return fallback;
        throw kotoError('KOTO_ERR_CONFIG_ENV_MISSING', { file, path: keyPath.join('.') || '(root)', variable: name });
      });
      const key = keyPath.at(-1) ?? '';
      if (SECRET_KEY.test(key) && out.length >= 4) secrets.add(out);
      return out;
    }
    if (Array.isArray(node)) return node.map((item, i) => visit(item, [...keyPath, String(i)]));
    if (node && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) out[k] = visit(v, [...keyPath, k]);
      return out;
    }
    return node;
  };

  return { value: visit(data, []) as Record<string, unknown>, secrets: [...secrets] };
}

/** A deep copy with every secret-looking key's value replaced, for `koto config print`. */
export function redactConfig(value: unknown, secrets: readonly string[] = [], keyPath: string[] = []): unknown {
  if (typeof value === 'string') {
    const key = keyPath.at(-1) ?? '';
    if (SECRET_KEY.test(key) && value.length > 0) return '[redacted]';
    return scrub(value, secrets);
  }
  if (Array.isArray(value)) return value.map((item, i) => redactConfig(item, secrets, [...keyPath, String(i)]));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactConfig(v, secrets, [...keyPath, k]);
    return out;
  }
  return value;
}

/** Replaces every known secret inside a string (a secret pasted into a URL or header, say). */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4 && out.includes(secret)) out = out.split(secret).join('[redacted]');
  }
  return out;
}
