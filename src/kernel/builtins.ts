/**
 * What the kernel knows of each built-in plugin before importing it, so a config that does not
 * use a plugin never loads its code (an OpenAI-only config loads no Azure, no pocketsphinx, no
 * local corrector; a one-shot command no hotkey). Mirrors each plugin's `definePlugin`
 * declaration; test/kernel/builtin-manifest.test.ts imports every plugin and compares.
 */
export interface BuiltinManifest {
  readonly name: string;
  /** Serves providers (`use: <name>`) with these capabilities. */
  readonly capabilities?: readonly ('asr' | 'correction')[];
  readonly outputs?: readonly string[];
  readonly audioSources?: readonly string[];
  /** Offers providers from the environment (`defaultProviders`): needed when the config names none, or a fallback names one it may offer. */
  readonly defaultProviders?: boolean;
  /** Needed whatever the config says: by every kernel, or only by a long-running host (the daemon). */
  readonly needed?: 'always' | 'daemon';
  /**
   * Keys of the `correction` section it declares (`correctionOptions`): a config that sets one
   * loads the plugin, so the key is valid whatever providers the config names — at start and at
   * every reload alike.
   */
  readonly correctionKeys?: readonly string[];
}

/** The OpenAI wire keys of `correction` (openai-compatible's correctionOptionsSchema; azure-foundry shares it). */
const OPENAI_CORRECTION_KEYS = ['protocol', 'topP', 'maxTokensParam', 'reasoningEffort'];

export const BUILTIN_MANIFEST: readonly BuiltinManifest[] = [
  { name: 'azure-foundry', capabilities: ['asr', 'correction'], defaultProviders: true },
  // feedback taps `ready`; focus answers `focusedWindow` for profiles and paste keys; outputs is the default delivery.
  { name: 'feedback', needed: 'always' },
  { name: 'focus', needed: 'always' },
  { name: 'hotkey', needed: 'daemon' },
  { name: 'local-correction', capabilities: ['correction'], defaultProviders: true },
  { name: 'mic-native', audioSources: ['mic-native'] },
  { name: 'openai-compatible', capabilities: ['asr', 'correction'], defaultProviders: true, correctionKeys: OPENAI_CORRECTION_KEYS },
  { name: 'outputs', outputs: ['stdout', 'file', 'clipboard', 'paste', 'type'], needed: 'always' },
  { name: 'pocketsphinx', capabilities: ['asr'], defaultProviders: true },
];

const byName = new Map(BUILTIN_MANIFEST.map((m) => [m.name, m]));

export function builtinManifest(name: string): BuiltinManifest | undefined {
  return byName.get(name);
}

const record = (value: unknown): Record<string, unknown> =>
  value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const outputName = (entry: unknown): unknown => (typeof entry === 'string' ? entry : record(entry).use);

/**
 * The built-ins a raw (not yet validated) config needs, out of `available` (the plugin folders
 * present). A plugin without a manifest entry is always needed: nothing says what it serves.
 * Reads the data defensively: validation, with the schemas of the plugins chosen here, comes next.
 */
export function neededBuiltins(data: Record<string, unknown>, available: readonly string[], options: { daemon: boolean }): string[] {
  const providers = record(data.providers);
  const uses = new Set(Object.values(providers).map((p) => record(p).use));
  const outputs = new Set<unknown>(list(data.output).map(outputName));
  const sections = [data, ...list(data.profiles).map(record)];
  for (const section of sections) for (const entry of list(section.output)) outputs.add(outputName(entry));
  // A fallback may name a default a plugin offers without settings (`offline`, `local`).
  const namesDefault = sections.some((section) =>
    ['asr', 'correction'].some((key) =>
      list(record(section[key]).fallback).some((name) => typeof name !== 'string' || !Object.hasOwn(providers, name)),
    ),
  );
  const wantsDefaults = Object.keys(providers).length === 0 || namesDefault;
  const audio = record(data.audio);
  const source = audio.source === undefined ? 'mic-native' : audio.source;
  const optioned = new Set(Object.keys(record(data.pluginOptions)));
  const correctionKeys = new Set(sections.flatMap((section) => Object.keys(record(section.correction))));

  return available.filter((name) => {
    const m = byName.get(name);
    if (!m) return true;
    return (
      m.needed === 'always' ||
      (m.needed === 'daemon' && options.daemon) ||
      uses.has(name) ||
      optioned.has(name) ||
      (wantsDefaults && m.defaultProviders === true) ||
      (m.outputs ?? []).some((o) => outputs.has(o)) ||
      (m.audioSources ?? []).includes(source as string) ||
      (m.correctionKeys ?? []).some((key) => correctionKeys.has(key))
    );
  });
}
