import {
  AsyncParallelHook,
  AsyncSeriesBailHook,
  AsyncSeriesHook,
  AsyncSeriesWaterfallHook,
  HookMap,
  SyncHook,
  SyncWaterfallHook,
} from 'tapable';
import type { KotoConfig } from './config/validate.ts';
import { describe, KotoError, kotoError } from './errors.ts';
import type {
  AsrRequest,
  AsrResult,
  ConfigChange,
  CorrectionRequest,
  CorrectionResult,
  InterimEvent,
  OutgoingRequest,
  OutputRequest,
  ProbeRequest,
  ProbeResult,
  ReadyContext,
  RecordingEvent,
  DaemonHost,
  FocusedWindow,
  FocusedWindowRequest,
  SessionContext,
  SessionRecord,
  SessionState,
  TranscriptValue,
  TransportAgentOptions,
} from './types.ts';

/** Tap order within a hook. Named so plugins never pass magic numbers. */
export const STAGE = Object.freeze({ PRE: -100, DEFAULT: 0, POST: 100 });

/** An audio source hands the session audio (a file, stdin, the microphone). */
export interface AudioSourceRequest {
  readonly session: SessionContext;
  readonly device: string;
  readonly signal: AbortSignal;
}
export interface AudioFrame {
  /** 16-bit mono PCM. */
  readonly samples: Int16Array;
  /** Milliseconds since the recording started (first sample of this frame). */
  readonly timestamp: number;
  /** Root-mean-square level of the frame, 0..1. */
  readonly rms: number;
  /** Samples per second (the kernel fills it from the source's handle on `audioFrame`). */
  readonly sampleRate?: number | undefined;
}
export interface AudioSourceHandle {
  /** Frames as they are captured; ends after stop() (or with an error if the device fails). */
  readonly frames: AsyncIterable<AudioFrame>;
  readonly sampleRate: number;
  /** Where the recording is being written as it is captured (WAV), if the source saves it. */
  readonly path?: string | undefined;
  /** Device actually opened, as the backend names it. */
  readonly device?: string | undefined;
  /** Audio from before the request that the recording starts with (a kept-open device's pre-roll), ms. */
  readonly preRollMs?: number | undefined;
  /** When the first captured sample of the recording was taken (ms since the epoch), if known. */
  readonly firstSampleAt?: number | undefined;
  /** Stops capturing; resolves when the file on disk is complete. */
  stop(): Promise<void>;
}
export interface AudioDevicesRequest {
  readonly config: KotoConfig;
}
export interface AudioDevice {
  readonly name: string;
  readonly description?: string | undefined;
  readonly isDefault: boolean;
  /** Which backend reported it (pvrecorder, parec, arecord, …). */
  readonly backend: string;
}

/**
 * The kernel's hooks, each with the tapable kind that matches how it runs:
 * Bail where the first provider that answers wins, Waterfall where a value is threaded
 * through, Parallel where every tap receives the same event, Series for ordered lifecycle.
 */
export function createHooks() {
  return Object.freeze({
    /** The kernel is up (plugins applied, transport built). */
    ready: new AsyncSeriesHook<[ReadyContext]>(['context'], 'ready'),
    /** Shutdown; taps run in reverse registration order (last registered closes first). */
    close: new AsyncSeriesHook<[]>([], 'close'),
    /** A new validated config took effect (request-level: applies from the next session). */
    configChanged: new SyncHook<[ConfigChange]>(['change'], 'configChanged'),
    /** Adjust the shared agent's options before it is built (and on every rebuild). */
    transportOptions: new SyncWaterfallHook<[TransportAgentOptions]>(['options'], 'transportOptions'),
    /** Per-request decoration through the shared client: auth headers, tokens, tracing. */
    request: new AsyncSeriesWaterfallHook<[OutgoingRequest]>(['request'], 'request'),
    /** A long-running host (the daemon) serves requests: trigger plugins (hotkeys) and warm sources start here. */
    daemon: new AsyncSeriesHook<[DaemonHost]>(['host'], 'daemon'),
    /**
     * Which window has the keyboard focus (profiles, per-application paste keys); the first tap
     * that knows wins, `undefined` passes. The kernel bounds it with a deadline and turns any
     * failure into "unknown": call it through `api.focusedWindow()`.
     */
    focusedWindow: new AsyncSeriesBailHook<[FocusedWindowRequest], FocusedWindow | undefined>(['request'], 'focusedWindow'),
    /** A live recording started or stopped capturing (cues, meters). Synchronous: taps must be cheap. */
    recording: new SyncHook<[RecordingEvent]>(['event'], 'recording'),
    /** A session moved to another state (transcribing, correcting, output, done…): live views. Taps must be cheap. */
    sessionState: new SyncHook<[SessionContext, SessionState]>(['session', 'state'], 'sessionState'),
    /** A session was created and its audio is (or is being) saved: history records it here. */
    sessionBegin: new SyncHook<[SessionContext, string | undefined]>(['session', 'audioPath'], 'sessionBegin'),
    /** A session starts: pre-warm connections, open devices. All taps run concurrently. */
    sessionStart: new AsyncParallelHook<[SessionContext]>(['session'], 'sessionStart'),
    /** Audio sources by name (`mic-native`, …); the first tap that returns a handle wins. */
    audioSource: new HookMap(
      (key: string) => new AsyncSeriesBailHook<[AudioSourceRequest], AudioSourceHandle | undefined>(['request'], `audioSource:${key}`),
      'audioSource',
    ),
    /**
     * Every frame of a live recording as it is captured (streaming ASR feeds a realtime socket
     * from here; level meters read `rms`). Synchronous and on the capture path: taps must be cheap.
     */
    audioFrame: new SyncHook<[SessionContext, AudioFrame]>(['session', 'frame'], 'audioFrame'),
    /** Input devices an audio source can record from, by source name (`koto devices`). */
    audioDevices: new HookMap(
      (key: string) => new AsyncSeriesBailHook<[AudioDevicesRequest], AudioDevice[] | undefined>(['request'], `audioDevices:${key}`),
      'audioDevices',
    ),
    /** Transcription by provider plugin name (`use`); the first tap that returns a result wins. */
    asr: new HookMap((key: string) => new AsyncSeriesBailHook<[AsrRequest], AsrResult | undefined>(['request'], `asr:${key}`), 'asr'),
    /** Interim text from streaming ASR or correction, for live display. */
    interim: new SyncHook<[InterimEvent]>(['event'], 'interim'),
    /** Post-ASR transforms, text threaded through each tap (dictionary fixes, filters). */
    transcript: new AsyncSeriesWaterfallHook<[TranscriptValue]>(['value'], 'transcript'),
    /** LLM correction by provider plugin name (`use`); first result wins. */
    correction: new HookMap(
      (key: string) => new AsyncSeriesBailHook<[CorrectionRequest], CorrectionResult | undefined>(['request'], `correction:${key}`),
      'correction',
    ),
    /** Outputs by name; the kernel runs the selected outputs in parallel. */
    output: new HookMap((key: string) => new AsyncSeriesHook<[OutputRequest]>(['request'], `output:${key}`), 'output'),
    /** `koto doctor`: is this provider reachable and are its credentials accepted? By plugin name. */
    probe: new HookMap(
      (key: string) => new AsyncSeriesBailHook<[ProbeRequest], ProbeResult | undefined>(['request'], `probe:${key}`),
      'probe',
    ),
    /** A session ended (done, failed or cancelled): history, stats, cleanup. */
    sessionEnd: new AsyncParallelHook<[SessionRecord]>(['record'], 'sessionEnd'),
  });
}

export type KernelHooks = ReturnType<typeof createHooks>;

type CallMethods = 'call' | 'callAsync' | 'promise' | 'intercept' | 'taps' | 'interceptors';
export type TapOnly<H> = Omit<H, CallMethods>;
type TapOnlyMap<H> = { for(key: string): TapOnly<H>; get(key: string): TapOnly<H> | undefined };

/**
 * What a plugin sees of the hooks: it can tap, never call. (`HookMap<H>` is invariant in `H`, so
 * the map case must `infer` its hook: a test against `HookMap<unknown>` never matched, and `for()`
 * then typed the full hook, `promise` included.)
 */
export type PluginHooks = {
  readonly [K in keyof KernelHooks]: KernelHooks[K] extends HookMap<infer H> ? TapOnlyMap<H> : TapOnly<KernelHooks[K]>;
};

interface AnyHook {
  name?: string | undefined;
  tap: (...args: unknown[]) => void;
  tapAsync?: (...args: unknown[]) => void;
  tapPromise?: (...args: unknown[]) => void;
  isUsed(): boolean;
  intercept(i: unknown): void;
}

type TapOptions = string | { name?: string; stage?: number; before?: string };

// A tap's name is always the plugin's name: plugins cannot impersonate each other, and every
// error a tap throws can say which plugin it came from.
function named(options: TapOptions, plugin: string): { name: string; stage?: number; before?: string } {
  if (typeof options === 'string') return { name: plugin };
  return { ...options, name: plugin };
}

function tapView(hook: AnyHook, plugin: string): unknown {
  const view: Record<string, unknown> = {
    name: hook.name,
    isUsed: () => hook.isUsed(),
    tap: (options: TapOptions, fn: unknown) => hook.tap(named(options, plugin), fn),
  };
  if (hook.tapAsync) view.tapAsync = (options: TapOptions, fn: unknown) => hook.tapAsync!(named(options, plugin), fn);
  if (hook.tapPromise) view.tapPromise = (options: TapOptions, fn: unknown) => hook.tapPromise!(named(options, plugin), fn);
  return Object.freeze(view);
}

/** Tap-only views of every hook, bound to one plugin's name. */
export function pluginHooks(hooks: KernelHooks, plugin: string): PluginHooks {
  const out: Record<string, unknown> = {};
  for (const [key, hook] of Object.entries(hooks)) {
    if (hook instanceof HookMap) {
      const map = hook as unknown as HookMap<AnyHook>;
      out[key] = Object.freeze({
        for: (k: string) => tapView(map.for(k), plugin),
        get: (k: string) => {
          const h = map.get(k);
          return h ? tapView(h, plugin) : undefined;
        },
      });
    } else {
      out[key] = tapView(hook as unknown as AnyHook, plugin);
    }
  }
  return Object.freeze(out) as PluginHooks;
}

/** Attaches plugin and hook to an error thrown in a tap; wraps foreign errors in the catalogue. */
export function tagHookError(err: unknown, plugin: string, hook: string): KotoError {
  if (KotoError.is(err)) {
    err.plugin ??= plugin;
    err.hook ??= hook;
    return err;
  }
  return kotoError('KOTO_ERR_HOOK_FAILED', { plugin, hook, detail: describe(err) }, { plugin, hook, cause: err });
}

interface FullTap {
  name: string;
  type: 'sync' | 'async' | 'promise';
  fn: (...args: unknown[]) => unknown;
  stage?: number;
}

/**
 * Every hook gets one `register` interceptor that wraps each tap so its errors carry the plugin
 * and hook name; `close` taps also get descending stages, so the last registered closes first.
 */
export function instrumentHooks(hooks: KernelHooks): void {
  let closeOrder = 0;
  const instrument = (hook: AnyHook) => {
    const hookName = hook.name ?? 'unknown';
    hook.intercept({
      register: (tap: FullTap) => {
        const fn = tap.fn;
        const plugin = tap.name;
        const wrapped =
          tap.type === 'promise'
            ? (...args: unknown[]) => {
                try {
                  return Promise.resolve(fn(...args)).catch((err: unknown) => {
                    throw tagHookError(err, plugin, hookName);
                  });
                } catch (err) {
                  return Promise.reject(tagHookError(err, plugin, hookName));
                }
              }
            : tap.type === 'async'
              ? (...args: unknown[]) => {
                  const callback = args.pop() as (err?: unknown, result?: unknown) => void;
                  try {
                    fn(...args, (err: unknown, result: unknown) =>
                      err ? callback(tagHookError(err, plugin, hookName)) : callback(null, result),
                    );
                  } catch (err) {
                    callback(tagHookError(err, plugin, hookName));
                  }
                }
              : (...args: unknown[]) => {
                  try {
                    return fn(...args);
                  } catch (err) {
                    throw tagHookError(err, plugin, hookName);
                  }
                };
        const stage = hookName === 'close' ? (tap.stage ?? 0) * 1000 - ++closeOrder : tap.stage;
        return { ...tap, fn: wrapped, ...(stage === undefined ? {} : { stage }) };
      },
    });
  };
  for (const hook of Object.values(hooks)) {
    if (hook instanceof HookMap) {
      (hook as unknown as HookMap<AnyHook>).intercept({
        factory: (key: unknown, created: AnyHook) => {
          instrument(created);
          return created;
        },
      });
    } else {
      instrument(hook as unknown as AnyHook);
    }
  }
}
