/**
 * The kernel's error catalogue. Every error a user can cause has a stable code, a message
 * template, a fix and an exit code (the exit codes of docs/cli.md). docs/errors.md documents
 * every code; test/errors-catalogue.test.ts keeps the two in sync.
 *
 * What belongs here: the kernel's own failures, and the codes of a contract that any plugin of
 * a kind raises (every provider: KOTO_ERR_AUTH, _RATE_LIMITED, _NETWORK, _UPSTREAM, …; every
 * audio source: _AUDIO_DEVICE_NOT_FOUND, _OPEN, _LOST, _NULL, _SILENCE; every output:
 * KOTO_ERR_OUTPUT), so callers and the failover rules can match on them whoever raised them. A
 * situation only one plugin has (an Azure deployment, the PulseAudio server, a hotkey grab, the
 * offline engine) is that plugin's own code (`definePlugin({ errors })`, `<PLUGIN>_ERR_*`), and
 * fix texts here name no provider, device or program: the plugin gives the specific wording
 * with `kotoError(code, params, { message, fix })`.
 */

export const EXIT = Object.freeze({
  OK: 0,
  RUNTIME: 1,
  USAGE: 2,
  CONFIG: 3,
  NO_DAEMON: 4,
});

interface ErrorSpec {
  /** Message template; `{name}` placeholders are filled from the error's params. */
  readonly message: string;
  /** What the user should do about it. Same placeholder syntax. */
  readonly fix: string;
  readonly exit: number;
}

export const ERRORS = {
  KOTO_ERR_NODE_VERSION: {
    message: 'Koto needs Node >= 22.19, this is {version}',
    fix: 'install Node 22.19 or newer (or run through `npx koto`, which uses the Node pinned by the project)',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_USAGE: {
    message: '{detail}',
    fix: 'see `koto --help`',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_CONFIG_NOT_FOUND: {
    message: 'config file {file} does not exist',
    fix: 'check the path given to --config',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_CONFIG_PARSE: {
    message: '{file}{location}: {detail}',
    fix: 'fix the syntax at that line',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_CONFIG_INVALID: {
    message: '{file}: {detail}',
    fix: 'correct that key (see docs/configuration.md)',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_CONFIG_ENV_MISSING: {
    message: '{file}: {path} uses ${{variable}}, but the environment variable {variable} is not set',
    fix: 'export {variable}, or write the value into the config',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_CONFIG_FILE_UNREADABLE: {
    message: '{file}: {path} names {target}, which cannot be read ({reason})',
    fix: 'create the file or correct the path (paths are relative to the config file)',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_CONFIG_UNTRUSTED: {
    message: '{file} is not trusted: {reason}',
    fix: 'review the file, then run `{command}` (and `koto reload` for a running daemon, which keeps its last good config until then)',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_TRUST_NO_CONFIG: {
    message: 'no project config file found in {dir} or its parent folders',
    fix: 'run `koto trust` inside the project, or give the file: `koto trust PATH`',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_TRUST_NOT_CONFIG: {
    message: '{file} is not a config file Koto finds by searching: {detail}',
    fix: 'only files found by the search need trust (package.json#koto, .kotorc*, koto.config.*); a file given with --config is used as it is',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_TRUST_NOT_LISTED: {
    message: '{file} is not in the trust list ({store})',
    fix: 'see what is trusted with `koto trust --list`',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_TRUST_STORE_UNSAFE: {
    message: 'the trust store {file} is not safe to use: {problem}',
    fix: '{remedy}',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PLUGIN_NOT_FOUND: {
    message: 'plugin "{plugin}" was not found (tried: {tried})',
    fix: 'install it with `npm install {plugin}`, or correct the name in `plugins`',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PLUGIN_INVALID: {
    message: 'plugin "{plugin}" does not export a Koto plugin ({detail})',
    fix: 'the package must `export default definePlugin({...})` from koto-voice',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PLUGIN_INCOMPATIBLE: {
    message: 'plugin "{plugin}" needs koto-voice {range}, this is {version}',
    fix: 'upgrade the plugin or koto-voice so the versions match',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PLUGIN_DUPLICATE: {
    message: 'two plugins are named "{plugin}"',
    fix: 'list each plugin once in `plugins`',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PLUGIN_DEPENDENCY: {
    message: 'plugin "{plugin}" needs plugin "{dependency}", which is not loaded',
    fix: 'add "{dependency}" to `plugins` in the config',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PLUGIN_OPTIONS: {
    message: 'plugin "{plugin}": bad option {path}: {detail}',
    fix: 'correct that option in the config',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PLUGIN_APPLY: {
    message: 'plugin "{plugin}" failed to start: {detail}',
    fix: "check the plugin's options; run with --debug for the stack",
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_PLUGIN_TIMEOUT: {
    message: 'plugin "{plugin}" did not finish starting within {ms} ms',
    fix: "the plugin's apply() hangs; update or remove the plugin",
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_DEPENDENCY_MISSING: {
    message: '{feature} needs the package {package}, which is not installed (an optional dependency of koto-voice)',
    fix: 'install it where koto-voice is installed: `npm install {spec}` (for a global koto-voice: `npm install -g {spec}`){alternative}',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_HOOK_FAILED: {
    message: 'plugin "{plugin}" failed in hook {hook}: {detail}',
    fix: "run with --debug for the stack; report it to the plugin's author",
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_PROVIDER_UNKNOWN: {
    message: '{section}.provider is "{provider}", but no such provider is configured (known: {known})',
    fix: 'add it under `providers`, or leave `{section}.provider` unset to use the default provider (docs/configuration.md says how it is chosen)',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_PROVIDER_UNSERVED: {
    message: 'no plugin serves {capability} for provider "{provider}" (use: {use})',
    fix: 'check `use` for that provider; `koto plugins` lists what each plugin serves',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_NO_PROVIDER: {
    message: 'no {capability} provider is configured',
    fix: 'configure a provider under `providers` and set `{capability}.provider` (`koto plugins` lists the plugins that serve {capability}), or give a plugin what it derives a default provider from (docs/configuration.md)',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_AUTH: {
    message: 'provider "{provider}" rejected the credentials (HTTP {status})',
    fix: 'check the API key for "{provider}" (config `providers.{provider}.apiKey` or its environment variable)',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_ENDPOINT_NOT_FOUND: {
    message: 'provider "{provider}" answered 404 for {url}',
    fix: 'check the address configured for provider "{provider}" (`koto config print` shows it) and the model name',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_BAD_REQUEST: {
    message: 'provider "{provider}" refused the request (HTTP {status}): {detail}',
    fix: 'check the model and options for "{provider}"',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_RATE_LIMITED: {
    message: 'provider "{provider}" is rate limiting (HTTP 429){retry}',
    fix: "wait and retry, or check the account's quota",
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_UPSTREAM: {
    message: 'provider "{provider}" failed (HTTP {status}){detail}',
    fix: 'the service had a problem; the recording is kept, retry later',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_BAD_RESPONSE: {
    message: 'provider "{provider}" sent a response Koto cannot read: {detail}',
    fix: 'check that provider "{provider}" points at the kind of service its plugin speaks (`koto config print`, `koto plugins`)',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_NETWORK: {
    message: 'cannot reach {origin}: {detail}',
    fix: 'check the URL, the network and any proxy settings (HTTPS_PROXY / NO_PROXY)',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_TIMEOUT: {
    message: '{what} timed out after {ms} ms',
    fix: 'retry, or raise the timeout in the config',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_INSECURE_ENDPOINT: {
    message: '{url} is plain http; Koto only sends audio and keys over https (http is allowed for loopback)',
    fix: 'use an https URL, or set `allowInsecureHttp: true` on that provider if you accept the risk',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_REDIRECT_REFUSED: {
    message: '{url} redirected to another origin ({location}); Koto does not send credentials across origins',
    fix: 'configure the final URL directly',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_AUDIO_INPUT: {
    message: 'cannot read audio {input}: {detail}',
    fix: 'check the file path and that it is an audio file',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_AUDIO_FORMAT: {
    message: '{input} is {format}, which needs ffmpeg to convert, and ffmpeg is not installed',
    fix: 'install ffmpeg (e.g. `apt-get install ffmpeg`) or convert the file to WAV',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_UPLOAD_TOO_LARGE: {
    message: '{input} is {size}, more than provider "{provider}" takes in one request ({limit}), and {reason}',
    fix: 'install ffmpeg (`apt-get install ffmpeg` / `brew install ffmpeg`) so Koto can compress and split it, convert it to 16-bit WAV, or shorten or split the recording; if the server takes larger uploads, raise {option}',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_AUDIO_SOURCE_UNKNOWN: {
    message: 'audio source "{source}" is not served by any plugin (known: {known})',
    fix: 'set `audio.source` to one of the known sources',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_AUDIO_DEVICE_NOT_FOUND: {
    message: 'no input device matches "{device}" (available: {available})',
    fix: 'set `audio.device` to one of the available names, or to `default`; `koto devices` lists them',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_AUDIO_DEVICE_NULL: {
    message: 'input device "{device}" is a null device: it discards sound and records only silence',
    fix: 'pick a real microphone in `audio.device` (or make one the system default); `koto devices` lists them',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_AUDIO_SILENCE: {
    message: 'the microphone "{device}" delivers silence (only zero samples for {ms} ms)',
    fix: 'unmute the microphone and raise its input level in the system sound settings, or pick another device in `audio.device`',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_AUDIO_DEVICE_LOST: {
    message: 'the microphone "{device}" stopped delivering audio after {atMs} ms ({detail})',
    fix: 'reconnect the microphone or check the sound server; the audio captured so far is kept in {path}',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_AUDIO_DEVICE_OPEN: {
    message: 'cannot open the microphone "{device}" with {backend}: {detail}',
    fix: 'check that the microphone is connected and not used exclusively by another program; `koto devices` lists the inputs',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_NO_TEXT: {
    message: '{input}: the transcription is empty',
    fix: 'check that the recording contains speech',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_OUTPUT: {
    message: 'output "{output}" failed: {detail}',
    fix: "check the output's options; the text is still in the session result",
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_PROFILE_UNKNOWN: {
    message: 'no profile is named "{profile}" (profiles: {known})',
    fix: 'use one of those names, or add the profile under `profiles` in the config (docs/configuration.md)',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_OUTPUT_UNKNOWN: {
    message: 'output "{output}" is not served by any plugin (known: {known})',
    fix: 'correct `output` in the config',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_NO_DAEMON: {
    message: 'no Koto daemon is running (socket {socket})',
    fix: 'start one with `koto daemon` (or as a systemd/launchd service, see docs/daemon.md)',
    exit: EXIT.NO_DAEMON,
  },
  KOTO_ERR_UI_UNAVAILABLE: {
    message: 'the control panel is not available: {reason}',
    fix: '{remedy}',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_DAEMON_RUNNING: {
    message: 'another Koto daemon is already running on {socket}',
    fix: 'use that one (`koto status`), or stop it first',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_DATA_FOLDER_IN_USE: {
    message: 'another Koto daemon ({owner}) is already using the data folder {dir}',
    fix: 'use that one, or stop it first; a second daemon needs its own data folder (XDG_DATA_HOME or KOTO_HOME)',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_UNSAFE_FOLDER: {
    message: 'the {role} folder {dir} is not private to you: {problem}',
    fix: '{remedy}',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_UNSAFE_SOCKET: {
    message: 'the control socket {socket} is not safe to use: {problem}',
    fix: '{remedy}',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_CONTROL_MESSAGE: {
    message: 'bad control message: {detail}',
    fix: 'send one JSON object per line, at most 1 MiB, like {"id":1,"cmd":"status","args":{}} (see docs/daemon.md)',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_HISTORY_UNREADABLE: {
    message: 'the history {file} cannot be opened: {detail}',
    fix: 'move it aside (`mv {file} {file}.broken`); Koto starts a new one, and your recordings stay where they are',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_HISTORY_NOT_FOUND: {
    message: 'no session {id} in the history',
    fix: 'list sessions with `koto history`',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_NOTHING_TO_DELIVER: {
    message: 'session {id} has no text to deliver{reason}',
    fix: 'transcribe its recording again with `koto retry {id}`',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_NO_RECORDING: {
    message: 'session {id} has no kept recording{reason}',
    fix: 'only sessions whose audio is still on disk can be retried (see daemon.keepAudio and retention)',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_CORPUS_EMPTY: {
    message: 'no audio files with reference transcripts in {dir}{detail}',
    fix: 'put audio files (WAV, FLAC, MP3, Ogg, WebM, M4A) in the folder, each with a sibling .txt reference (clip.wav + clip.txt)',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_TEMPLATE_UNKNOWN: {
    message: 'no rewrite template "{template}" (known: {known})',
    fix: 'use one of the known templates, or add it under `rewrite.templates` in the config',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_REWRITE_FAILED: {
    message: 'rewrite "{template}" failed: {detail}',
    fix: 'check the provider (`koto doctor`) and retry; nothing was printed as the rewritten text',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_NO_LAST_RESULT: {
    message: 'there is no dictation with text in the history',
    fix: 'dictate first, or give the text (`koto rewrite --template NAME "text"`, or - for stdin)',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_NO_DICTIONARY: {
    message: 'no dictionary file is configured{where}',
    fix: 'add `dictionary: ./dictionary.txt` to {config} (one term per line; the file is created on the first `koto dict add`)',
    exit: EXIT.CONFIG,
  },
  KOTO_ERR_CONFIRM_REQUIRED: {
    message: 'not changing {what} without confirmation: there is no terminal to ask on',
    fix: 'run it in a terminal and answer the prompt, or pass --yes',
    exit: EXIT.USAGE,
  },
  KOTO_ERR_CLOSED: {
    message: 'the Koto kernel is {state}',
    fix: 'create a new kernel with createKernel()',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_ABORTED: {
    message: '{what} was cancelled',
    fix: 'nothing to do',
    exit: EXIT.RUNTIME,
  },
  KOTO_ERR_INTERNAL: {
    message: 'internal error: {detail}',
    fix: 'run with --debug and report it',
    exit: EXIT.RUNTIME,
  },
} as const satisfies Record<`KOTO_ERR_${string}`, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * A code a plugin declares (`definePlugin({ errors })`): `<PREFIX>_ERR_<NAME>`, the prefix being
 * the plugin's name in capitals (`koto-plugin-acme` and `acme` → `ACME_ERR_…`). `KOTO_ERR_` is
 * the kernel's.
 */
export type PluginErrorCode = `${Uppercase<string>}_ERR_${Uppercase<string>}`;

/** What a plugin declares for one of its codes. */
export interface PluginErrorSpec {
  /** Message template; `{name}` placeholders are filled from the error's params. */
  readonly message: string;
  /** What the user should do about it. Same placeholder syntax. */
  readonly fix: string;
  /** Whether the kernel's retry may try again (e.g. a quota that resets, a busy upstream). Default false. */
  readonly retryable?: boolean | undefined;
  /** Process exit code: 1 (runtime, the default) or 3 (a configuration the user must change). */
  readonly exit?: 1 | 3 | undefined;
}

// One registry per process, shared by every copy of koto-voice in it (a plugin may bundle its own):
// a code declared through one copy is known to kotoError of another.
const REGISTRY = Symbol.for('koto-voice.plugin-errors');
const pluginErrors: Map<string, PluginErrorSpec & { readonly plugin: string }> = ((globalThis as Record<symbol, unknown>)[REGISTRY] ??=
  new Map()) as Map<string, PluginErrorSpec & { readonly plugin: string }>;

/** The code prefix a plugin's own errors must carry: `ACME` for `koto-plugin-acme` or `@me/koto-plugin-acme`. */
export function errorPrefixOf(plugin: string): string {
  const bare = plugin.replace(/^@[^/]+\//, '').replace(/^koto-plugin-/, '');
  return bare
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/**
 * Registers the codes a plugin declares. Throws KOTO_ERR_PLUGIN_INVALID naming the first code
 * that does not carry the plugin's prefix or lacks a message or fix.
 */
export function registerPluginErrors(plugin: string, errors: Readonly<Record<string, PluginErrorSpec>>): void {
  const prefix = `${errorPrefixOf(plugin)}_ERR_`;
  const checked: [string, PluginErrorSpec][] = [];
  for (const [code, spec] of Object.entries(errors)) {
    const problem =
      prefix === 'KOTO_ERR_' || code.startsWith('KOTO_ERR_')
        ? `${code}: KOTO_ERR_ codes are the kernel's; a plugin's codes start with its own name`
        : !code.startsWith(prefix) || !/^[A-Z0-9_]+$/.test(code) || code.length === prefix.length
          ? `${code}: this plugin's codes must look like ${prefix}SOMETHING (capitals, digits, _)`
          : typeof spec?.message !== 'string' || !spec.message || typeof spec.fix !== 'string' || !spec.fix
            ? `${code}: each code needs a message and a fix`
            : spec.exit !== undefined && spec.exit !== 1 && spec.exit !== 3
              ? `${code}: exit must be 1 or 3`
              : undefined;
    if (problem) throw kotoError('KOTO_ERR_PLUGIN_INVALID', { plugin, detail: `errors.${problem}` });
    checked.push([code, spec]);
  }
  for (const [code, spec] of checked) pluginErrors.set(code, Object.freeze({ ...spec, plugin }));
}

/** The codes a plugin declared (for `koto plugins`). */
export function pluginErrorCodes(plugin: string): string[] {
  return [...pluginErrors]
    .filter(([, spec]) => spec.plugin === plugin)
    .map(([code]) => code)
    .sort();
}

function specOf(code: string): (ErrorSpec & { readonly plugin?: string; readonly retryable?: boolean | undefined }) | undefined {
  if (Object.hasOwn(ERRORS, code)) return ERRORS[code as ErrorCode];
  const declared = pluginErrors.get(code);
  return declared
    ? {
        message: declared.message,
        fix: declared.fix,
        exit: declared.exit ?? EXIT.RUNTIME,
        plugin: declared.plugin,
        retryable: declared.retryable,
      }
    : undefined;
}

export interface KotoErrorOptions {
  params?: Record<string, unknown>;
  plugin?: string;
  hook?: string;
  cause?: unknown;
  /** Extra machine-readable facts (HTTP status, retryable, …). Never secrets. */
  details?: Record<string, unknown>;
  /**
   * A plugin's more specific wording for this code (an Azure deployment, a microphone): the code,
   * exit code and identity stay the catalogue's; only the sentence the user reads changes.
   */
  message?: string | undefined;
  fix?: string | undefined;
}

// Identity that survives two copies of koto-voice in one process (a plugin bundling its own).
const MARK = Symbol.for('koto-voice.error');

function fill(template: string, params: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => (params[key] === undefined ? '' : String(params[key])));
}

export class KotoError extends Error {
  readonly code: ErrorCode | PluginErrorCode;
  readonly fix: string;
  readonly exitCode: number;
  plugin: string | undefined;
  hook: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;
  readonly [MARK] = true;

  constructor(code: ErrorCode | PluginErrorCode, options: KotoErrorOptions = {}) {
    const declared = specOf(code);
    // An undeclared code is the plugin author's bug: say so (with the code) instead of crashing here.
    const spec = declared ?? ERRORS.KOTO_ERR_INTERNAL;
    const params = declared
      ? (options.params ?? {})
      : { detail: `error code ${code} is not declared: declare it in definePlugin({ errors: { ${code}: { message, fix } } })` };
    super(options.message ?? fill(spec.message, params), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KotoError';
    this.code = declared ? code : 'KOTO_ERR_INTERNAL';
    this.fix = options.fix ?? fill(spec.fix, params);
    this.exitCode = spec.exit;
    this.plugin = options.plugin ?? declared?.plugin;
    this.hook = options.hook;
    const retryable = declared?.retryable;
    this.details = Object.freeze({ ...(retryable === undefined ? {} : { retryable }), ...options.details });
  }

  /** Rebuilds an error that crossed a process boundary (the daemon's control socket). */
  static revive(json: { code: string; message: string; fix?: string; exitCode?: number; plugin?: string; hook?: string }): KotoError {
    const known = Object.hasOwn(ERRORS, json.code);
    const err = new KotoError(known ? (json.code as ErrorCode) : 'KOTO_ERR_INTERNAL', {
      plugin: json.plugin,
      hook: json.hook,
      message: json.message,
      fix: json.fix,
    });
    // A plugin's own code keeps its identity across the socket, though this process never loaded the plugin.
    if (!known && /^[A-Z][A-Z0-9_]*_ERR_[A-Z0-9_]+$/.test(json.code) && !json.code.startsWith('KOTO_ERR_')) {
      Object.defineProperty(err, 'code', { value: json.code });
    }
    return json.exitCode === undefined ? err : Object.defineProperty(err, 'exitCode', { value: json.exitCode });
  }

  static is(value: unknown): value is KotoError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARK] === true;
  }

  /** The one line the CLI prints. */
  toLine(): string {
    const where = this.plugin ? ` [${this.plugin}${this.hook ? ` ${this.hook}` : ''}]` : '';
    return `${this.message}. Fix: ${this.fix}. (${this.code})${where}`;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      fix: this.fix,
      plugin: this.plugin,
      hook: this.hook,
      ...this.details,
    };
  }
}

/** A code as written at a call site: the kernel's own codes must be real ones; others a plugin's. */
export type CodeOf<C extends string> = C extends `KOTO_ERR_${string}` ? ErrorCode : C extends PluginErrorCode ? C : ErrorCode;

export function kotoError<C extends string>(
  code: CodeOf<C> & C,
  params?: Record<string, unknown>,
  extra?: Omit<KotoErrorOptions, 'params'>,
): KotoError {
  return new KotoError(code as ErrorCode | PluginErrorCode, { ...extra, params: params ?? {} });
}

/** Short, single-line description of any thrown value, for `detail` params. */
export function describe(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return describe(err.errors[0]);
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const text = err.message.split('\n')[0] ?? '';
    return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
  }
  return String(err).split('\n')[0] ?? '';
}
