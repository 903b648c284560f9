/**
 * The versioned provider contracts (`specificationVersion: 'v1'`) and `api.provide`, which
 * registers them.
 *
 * Why versioned: the hooks are the kernel's machinery and may change shape between releases;
 * a provider written against a *named* contract keeps working as long as the kernel still has
 * an adapter from that contract to its hooks. V1 is frozen: a change to a request or result
 * shape becomes a V2 contract plus a V2→hook adapter here, and V1 providers keep running
 * through the V1 adapter unchanged. Registration checks the version the provider was built
 * for, so a provider from the future fails at start with one line, not mid-dictation.
 *
 * The adapters only tap the existing hooks (`asr.for(plugin)`, `correction.for(plugin)`,
 * `output.for(name)`, `audioSource.for(name)`, …), so raw taps, tap naming, error tagging,
 * `koto plugins` listing and the kernel's retries and fallbacks work exactly as for a plugin
 * that taps the hooks itself.
 */
import { kotoError } from './errors.ts';
import type { AudioDevice, AudioDevicesRequest, AudioSourceHandle, AudioSourceRequest, PluginHooks } from './hooks.ts';
import type {
  AsrRequest,
  AsrResult,
  CorrectionRequest,
  CorrectionResult,
  OutputRequest,
  ProbeRequest,
  ProbeResult,
  ProviderOptionsRecord,
} from './types.ts';

/** The provider contract versions this koto-voice can run. */
export const PROVIDER_SPEC_VERSIONS: readonly string[] = Object.freeze(['v1']);

/** A speech-to-text provider, contract version 1 (frozen). */
export interface AsrProviderV1<Options = ProviderOptionsRecord> {
  readonly specificationVersion: 'v1';
  /** Transcribes the (already saved) audio. Throw catalogue errors; the kernel retries retryable ones. */
  transcribe(request: AsrRequest<Options>): Promise<AsrResult>;
  /** `koto doctor`: is the instance reachable and its credentials accepted? One line, never a secret. */
  probe?(request: ProbeRequest<Options>): Promise<ProbeResult>;
}

/** A correction provider, contract version 1 (frozen). */
export interface CorrectionProviderV1<Options = ProviderOptionsRecord> {
  readonly specificationVersion: 'v1';
  /** Corrects `request.text`; `{ text: null }` (or any failure) delivers the raw transcript. */
  correct(request: CorrectionRequest<Options>): Promise<CorrectionResult>;
  probe?(request: ProbeRequest<Options>): Promise<ProbeResult>;
}

/** An output (where the final text goes), contract version 1 (frozen). */
export interface OutputV1<Options = ProviderOptionsRecord> {
  readonly specificationVersion: 'v1';
  /** Delivers the text; report a partial delivery with `request.warn()`, throw when nothing was delivered. */
  deliver(request: OutputRequest<Options>): Promise<void>;
}

/** An audio source for live recordings, contract version 1 (frozen). */
export interface AudioSourceV1 {
  readonly specificationVersion: 'v1';
  /** Opens the device and hands the kernel a handle whose frames end after `stop()`. */
  open(request: AudioSourceRequest): Promise<AudioSourceHandle>;
  /** `koto devices`: the input devices this source can record from. */
  devices?(request: AudioDevicesRequest): Promise<AudioDevice[]>;
}

/**
 * `api.provide`: registers versioned providers. `Options` is the plugin's provider-instance
 * options (inferred from its `provider` schema, or its `ProviderOptionsRegistry` entry);
 * `OutputOptions` maps each output the plugin declares to its options.
 */
export interface ProvideApi<
  Options = ProviderOptionsRecord,
  OutputOptions extends Readonly<Record<string, unknown>> = Readonly<Record<string, ProviderOptionsRecord>>,
> {
  /** Serves `asr` for every provider instance whose `use` is this plugin (needs `capabilities: ['asr']`). */
  asr(provider: AsrProviderV1<Options>): void;
  /** Serves `correction` for every instance of this plugin (needs `capabilities: ['correction']`). */
  correction(provider: CorrectionProviderV1<Options>): void;
  /** Serves the output `name`, declared with its option schema in `outputs`. */
  output<Name extends keyof OutputOptions & string>(name: Name, output: OutputV1<OutputOptions[Name]>): void;
  /** Serves the audio source `name`, declared in `audioSources`. */
  audioSource(name: string, source: AudioSourceV1): void;
}

/** What registration needs to know of the plugin. */
export interface ProvidingPlugin {
  readonly name: string;
  readonly capabilities?: readonly ('asr' | 'correction')[] | undefined;
  readonly outputs?: Readonly<Record<string, unknown>> | undefined;
  readonly audioSources?: readonly string[] | undefined;
}

type Kind = 'asr' | 'correction' | 'output' | 'audioSource';
const METHOD: Record<Kind, string> = { asr: 'transcribe', correction: 'correct', output: 'deliver', audioSource: 'open' };

function invalid(plugin: string, message: string, fix: string) {
  return kotoError('KOTO_ERR_PLUGIN_INVALID', { plugin, detail: message }, { plugin, message, fix });
}

/** Refuses anything this kernel has no adapter for, before it can be called mid-dictation. */
function checkSpec(plugin: string, kind: Kind, label: string, value: unknown): void {
  const what = `plugin "${plugin}" registered ${label}`;
  if (typeof value !== 'object' || value === null) {
    throw invalid(plugin, `${what} that is not an object`, `pass an object with specificationVersion: 'v1' and ${METHOD[kind]}()`);
  }
  const version = (value as { specificationVersion?: unknown }).specificationVersion;
  if (version === undefined) {
    throw invalid(
      plugin,
      `${what} without a specificationVersion`,
      `declare specificationVersion: 'v1' on it (the contract it implements)`,
    );
  }
  if (typeof version !== 'string' || !PROVIDER_SPEC_VERSIONS.includes(version)) {
    const shown = typeof version === 'string' ? version : JSON.stringify(version);
    throw invalid(
      plugin,
      `${what} for provider spec ${shown}, which this koto-voice does not know (it runs ${PROVIDER_SPEC_VERSIONS.join(', ')})`,
      `this plugin was built for provider spec ${shown}; update koto-voice or the plugin`,
    );
  }
  if (typeof (value as Record<string, unknown>)[METHOD[kind]] !== 'function') {
    throw invalid(plugin, `${what} without a ${METHOD[kind]}() method`, `implement ${METHOD[kind]}() as the ${version} contract says`);
  }
}

/**
 * Builds `api.provide` for one plugin: checks each registration, then taps the plugin's own
 * tap-only hook views through the V1→hook adapters.
 */
export function provideApi(plugin: ProvidingPlugin, hooks: PluginHooks): ProvideApi {
  const name = plugin.name;
  const registered = new Set<string>();
  const once = (key: string, label: string) => {
    if (registered.has(key)) throw invalid(name, `plugin "${name}" registered ${label} twice`, `call api.provide once per ${label}`);
    registered.add(key);
  };
  const capable = (capability: 'asr' | 'correction', label: string) => {
    if (!plugin.capabilities?.includes(capability)) {
      throw invalid(
        name,
        `plugin "${name}" registered ${label} but does not declare capabilities: ['${capability}']`,
        `add '${capability}' to the plugin's capabilities, so the kernel can pick and validate its instances`,
      );
    }
  };
  // One probe answers for an instance whatever it is used for: the first registered one.
  let probed = false;
  const tapProbe = (probe: ((request: ProbeRequest) => Promise<ProbeResult>) | undefined) => {
    if (!probe || probed) return;
    probed = true;
    hooks.probe.for(name).tapPromise(name, (request) => probe(request));
  };
  return Object.freeze({
    asr(provider: AsrProviderV1) {
      checkSpec(name, 'asr', 'an ASR provider', provider);
      capable('asr', 'an ASR provider');
      once('asr', 'an ASR provider');
      hooks.asr.for(name).tapPromise(name, (request) => provider.transcribe(request));
      tapProbe(provider.probe?.bind(provider));
    },
    correction(provider: CorrectionProviderV1) {
      checkSpec(name, 'correction', 'a correction provider', provider);
      capable('correction', 'a correction provider');
      once('correction', 'a correction provider');
      hooks.correction.for(name).tapPromise(name, (request) => provider.correct(request));
      tapProbe(provider.probe?.bind(provider));
    },
    output(output: string, served: OutputV1) {
      checkSpec(name, 'output', `the output "${output}"`, served);
      if (!plugin.outputs || !Object.hasOwn(plugin.outputs, output)) {
        throw invalid(
          name,
          `plugin "${name}" registered the output "${output}" it does not declare`,
          `add "${output}" with its option schema to the plugin's outputs`,
        );
      }
      once(`output:${output}`, `the output "${output}"`);
      hooks.output.for(output).tapPromise(name, (request) => served.deliver(request));
    },
    audioSource(source: string, served: AudioSourceV1) {
      checkSpec(name, 'audioSource', `the audio source "${source}"`, served);
      if (!plugin.audioSources?.includes(source)) {
        throw invalid(
          name,
          `plugin "${name}" registered the audio source "${source}" it does not declare`,
          `add "${source}" to the plugin's audioSources`,
        );
      }
      once(`audioSource:${source}`, `the audio source "${source}"`);
      hooks.audioSource.for(source).tapPromise(name, (request) => served.open(request));
      const devices = served.devices?.bind(served);
      if (devices) hooks.audioDevices.for(source).tapPromise(name, (request) => devices(request));
    },
  });
}
