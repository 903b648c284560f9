/**
 * The one rule for what is secret, and the one scrubber. Config printing, the logger, error
 * messages, history rows, the daemon's answers, plugin load errors and the openai-wire helpers
 * all come here, so a name that counts as a credential in one place counts everywhere.
 *
 * A *name* is secret when one of its words (split at `-`, `_`, `.`, spaces and camelCase) is a
 * credential word: `key`, `token`, `secret`, `password`, `authorization`, `credential(s)`,
 * `cookie`, `sig`, `signature`, … — so `apiKey`, `x-api-key`, `Ocp-Apim-Subscription-Key`,
 * `clientSecret`, `accessToken`, `OPENAI_API_KEY` and a SAS URL's `sig` are secret, while
 * `keywords`, `maxTokens` (a count) and `api-version` are not.
 */
import { KotoError } from './errors.ts';

export const REDACTED = '[redacted]';

const SECRET_WORDS = new Set([
  'key',
  'apikey',
  'token',
  'secret',
  'secrets',
  'password',
  'passwd',
  'passphrase',
  'authorization',
  'credential',
  'credentials',
  'cookie',
  'sig',
  'signature',
]);
// Glued lowercase names (`accesstoken`, `clientsecret`, `subscriptionkey`): the word's ending decides.
const SECRET_ENDINGS = [
  'token',
  'secret',
  'password',
  'passwd',
  'apikey',
  'accesskey',
  'secretkey',
  'privatekey',
  'subscriptionkey',
  'signature',
  'credentials',
];

function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** Whether a key, header, query parameter or environment variable name holds a credential. */
export function isSecretName(name: string): boolean {
  return words(name).some((word) => SECRET_WORDS.has(word) || SECRET_ENDINGS.some((end) => word.endsWith(end)));
}

/**
 * Whether a value found under a secret name is worth scrubbing from *every* text. Plain words
 * are not: Azure's `credential: default` names a credential class, and scrubbing "default" out
 * of every log line would mangle them while hiding nothing. They are still redacted by name.
 */
export function isScrubbable(value: string): boolean {
  return value.length >= 4 && !/^[a-z]+(?:-[a-z]+)*$/.test(value);
}

/** Values of secret query parameters (and a password in the userinfo) of a URL-looking string. */
function urlSecrets(text: string): string[] {
  const out: string[] = [];
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return out;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return out;
  }
  if (url.password) out.push(url.password, decodeURIComponent(url.password));
  for (const [name, value] of url.searchParams) if (isSecretName(name)) out.push(value);
  // The raw (still-encoded) forms too: that is how they appear in a printed URL.
  for (const match of text.matchAll(/[?&;]([^=&#\s]+)=([^&#\s]*)/g)) if (isSecretName(match[1]!)) out.push(match[2]!);
  return out;
}

/**
 * Every credential value inside a config-like tree: strings and numbers under a secret name (at
 * any depth below it), secret query parameters of URLs, and the token of a `Bearer …` value.
 */
export function secretValuesIn(tree: unknown): string[] {
  const found = new Set<string>();
  const add = (value: string) => {
    if (isScrubbable(value)) found.add(value);
    const bearer = /^(?:bearer|basic|token)\s+(\S+)$/i.exec(value)?.[1];
    if (bearer && isScrubbable(bearer)) found.add(bearer);
  };
  const seen = new Set<object>();
  const visit = (node: unknown, secret: boolean): void => {
    if (typeof node === 'string') {
      if (secret) add(node);
      for (const value of urlSecrets(node)) add(value);
    } else if ((typeof node === 'number' || typeof node === 'bigint') && secret) {
      add(String(node));
    } else if (node && typeof node === 'object' && !seen.has(node)) {
      seen.add(node);
      for (const [key, value] of Object.entries(node)) visit(value, secret || (!Array.isArray(node) && isSecretName(key)));
    }
  };
  visit(tree, false);
  return [...found];
}

/**
 * Values of environment variables named like credentials (OPENAI_API_KEY, GITHUB_TOKEN, …), so a
 * plugin or upstream echoing one is scrubbed even when no config mentions it. At least 8
 * characters: a short value (`SSH_KEY_BITS=4096`) is no credential, and scrubbing it from every
 * line would garble numbers.
 */
export function secretsFromEnv(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(env))
    if (value && value.length >= 8 && isSecretName(name) && isScrubbable(value)) out.push(value);
  return out;
}

// Values stop at quotes and backslashes, so scrubbing JSON text (log fields) keeps it valid JSON.
const QUERY_PARAM = /([?&;])([A-Za-z0-9_.~%-]+)=([^&#\s"'\\<>)\]]+)/g;
const USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@"'\\]+:)([^@\s/"'\\]+)@/gi;
// A token after an auth scheme: at least 8 characters and a digit, so prose ("basic questions") is left alone.
const BEARER = /\b(bearer|basic)(\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}/gi;
const JSON_PAIR = /"([^"\\]{1,80})"(\s*:\s*)"(?:[^"\\]|\\.)*"/g;

/** Redacts what looks like a credential by its shape or name, without knowing the value. */
function scrubPatterns(text: string): string {
  return text
    .replace(QUERY_PARAM, (all, sep: string, name: string, value: string) =>
      value !== REDACTED && isSecretName(safeDecode(name)) ? `${sep}${name}=${REDACTED}` : all,
    )
    .replace(USERINFO, `$1${REDACTED}@`)
    .replace(BEARER, `$1$2${REDACTED}`)
    .replace(JSON_PAIR, (all, name: string, colon: string) => (isSecretName(name) ? `"${name}"${colon}"${REDACTED}"` : all));
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Removes every known secret value (raw and URL-encoded) and everything that looks like a
 * credential (secret query parameters, URL passwords, bearer tokens, `"apiKey": "…"`) from a text.
 */
export function scrubSecrets(text: string, secrets: Iterable<string> = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      if (out.includes(form)) out = out.split(form).join(REDACTED);
    }
  }
  return scrubPatterns(out);
}

/** A deep copy for display (`koto config print`): values under secret names replaced, the rest scrubbed. */
export function redactConfig(value: unknown, secrets: readonly string[] = [], secret = false): unknown {
  if (typeof value === 'string') return secret && value.length > 0 ? REDACTED : scrubSecrets(value, secrets);
  if ((typeof value === 'number' || typeof value === 'bigint') && secret) return REDACTED;
  if (Array.isArray(value)) return value.map((item) => redactConfig(item, secrets, secret));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactConfig(v, secrets, secret || isSecretName(k));
    return out;
  }
  return value;
}

/**
 * The same error with every secret scrubbed from what a user or a log can see: message, fix,
 * and the cause's message and stack (printed with --debug). KotoErrors keep code, exit code,
 * plugin, hook and details.
 */
export function scrubError(err: unknown, scrub: (text: string) => string): unknown {
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  const cleanCause = cause instanceof Error ? scrubPlainError(cause, scrub) : cause;
  if (KotoError.is(err)) {
    const clean = new KotoError(err.code, {
      message: scrub(err.message),
      fix: scrub(err.fix),
      plugin: err.plugin,
      hook: err.hook,
      details: err.details,
      cause: cleanCause,
    });
    if (err.stack) clean.stack = scrub(err.stack);
    return err.exitCode === clean.exitCode ? clean : Object.defineProperty(clean, 'exitCode', { value: err.exitCode });
  }
  return err instanceof Error ? scrubPlainError(err, scrub) : err;
}

function scrubPlainError(err: Error, scrub: (text: string) => string): Error {
  const clean = new Error(scrub(err.message));
  clean.name = err.name;
  if (err.stack) clean.stack = scrub(err.stack);
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) Object.defineProperty(clean, 'code', { value: code, enumerable: true });
  return clean;
}
