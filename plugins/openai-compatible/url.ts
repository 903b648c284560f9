import { isLoopbackHost, kotoError, type KotoError } from 'koto-voice';

/**
 * Checks of the URLs users type or paste (`baseUrl`, Azure's `endpoint`, environment
 * variables). Every answer says what is wrong and what a right value looks like, and never
 * repeats the value: a pasted URL may carry a password.
 */

export interface UrlRules {
  /** Accepted schemes without the colon (`https`, `http`, `wss`…). */
  readonly schemes: readonly string[];
  /** A right value, shown in every answer. */
  readonly example: string;
  /** Where the key or token belongs instead of the URL (`apiKey or headers`, `auth`). */
  readonly credentialsGoTo: string;
}

/** Why `value` is not a usable URL under `rules`, or undefined when it is one. */
export function urlProblem(value: string, rules: UrlRules): string | undefined {
  const text = value.trim();
  const expected = `expected a URL such as ${rules.example}`;
  if (text === '') return `is empty; ${expected}`;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return `is not a URL (no scheme such as ${rules.schemes[0] ?? 'https'}://); ${expected}`;
  if (/\s/.test(text)) return `contains a space or line break; ${expected} (check what was pasted)`;
  if (/^[a-z][a-z0-9+.-]*:\/*$/i.test(text)) return `has no host name; ${expected}`;
  if (!URL.canParse(text)) {
    if (text.includes('[') && !/\[[^\]]*\]/.test(text)) return `is not a valid URL: an IPv6 address needs its closing "]"; ${expected}`;
    return `is not a valid URL (check the host name and port); ${expected}`;
  }
  const url = new URL(text);
  const scheme = url.protocol.replace(/:$/, '');
  if (!rules.schemes.includes(scheme)) return `must be ${rules.schemes.map((s) => `${s}://`).join(' or ')}, not ${scheme}:; ${expected}`;
  if (!url.hostname) return `has no host name; ${expected}`;
  if (url.username || url.password) {
    return `must not contain credentials (a user name or password there would travel and be logged with the URL); put them in ${rules.credentialsGoTo}`;
  }
  return undefined;
}

/** Plain http (or ws) to a host that is not this machine. */
export function isInsecureRemote(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (url.protocol === 'http:' || url.protocol === 'ws:') && !isLoopbackHost(url.hostname);
}

/**
 * The config error for a URL that came from an environment variable (the defaults built from
 * `OPENAI_BASE_URL`, `AZURE_OPENAI_ENDPOINT`): names the variable, since no config file holds it.
 */
export function envUrlError(variable: string, problem: string, fix: string): KotoError {
  return kotoError('KOTO_ERR_CONFIG_INVALID', { file: 'the environment', detail: `${variable} ${problem}` }, { fix });
}
