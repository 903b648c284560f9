import { kotoError } from '../errors.ts';
import { secretValuesIn } from '../secrets.ts';

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Deeper than any real config; a guard against stack exhaustion on crafted files. */
export const MAX_CONFIG_DEPTH = 64;

/**
 * Replaces `${VAR}` (and `${VAR:-default}`) in every string of the config. A missing variable
 * without a default is an error naming the variable and the key path, never an empty string
 * that would later surface as a confusing 401. Also returns every credential value in the
 * result (see secrets.ts), for the scrubber.
 */
export function interpolateEnv(
  data: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  file: string,
): { value: Record<string, unknown>; secrets: string[] } {
  const ancestors = new Set<object>();
  const where = (keyPath: string[]) => keyPath.join('.') || '(root)';

  const visit = (node: unknown, keyPath: string[]): unknown => {
    if (typeof node === 'string') {
      return node.replace(PLACEHOLDER, (_, name: string, fallback: string | undefined) => {
        const found = env[name];
        if (found !== undefined && found !== '') return found;
        if (fallback !== undefined) return fallback;
        throw kotoError('KOTO_ERR_CONFIG_ENV_MISSING', { file, path: where(keyPath), variable: name });
      });
    }
    if (!node || typeof node !== 'object') return node;
    // A JS config can export a cyclic object, and a deep one could exhaust the stack.
    if (ancestors.has(node)) throw kotoError('KOTO_ERR_CONFIG_INVALID', { file, detail: `${where(keyPath)}: the value contains itself` });
    if (keyPath.length >= MAX_CONFIG_DEPTH) {
      throw kotoError('KOTO_ERR_CONFIG_INVALID', {
        file,
        detail: `${where(keyPath.slice(0, 3))}…: nested deeper than ${MAX_CONFIG_DEPTH} levels`,
      });
    }
    ancestors.add(node);
    try {
      if (Array.isArray(node)) return node.map((item, i) => visit(item, [...keyPath, String(i)]));
      const out: Record<string, unknown> = {};
      // defineProperty: a `__proto__` key from JSON stays a plain key, never the object's prototype.
      for (const [k, v] of Object.entries(node))
        Object.defineProperty(out, k, { value: visit(v, [...keyPath, k]), enumerable: true, writable: true, configurable: true });
      return out;
    } finally {
      ancestors.delete(node);
    }
  };

  const value = visit(data, []) as Record<string, unknown>;
  return { value, secrets: secretValuesIn(value) };
}
