import type { KotoConfig } from './config/validate.ts';

/** Audio handed to an ASR provider: already saved on disk before it is sent anywhere. */
export interface AudioData {
  readonly data: Uint8Array;
  readonly filename: string;
  readonly mimeType: string;
  /** Where the audio is kept (the input file, or the saved copy of stdin / the mic). */
  readonly path: string | undefined;
  /** Raw 16-bit PCM mono samples, when the source has them (WAV, microphone). */
  readonly pcm?: { readonly sampleRate: number; readonly samples: Int16Array } | undefined;
  /**
   * Set when silence was cut from a live recording before upload (`audio.trimSilence`): `pcm`
   * holds samples [start, end) of the `captured` ones (what `audioFrame` taps saw; `path` has them all).
   */
  readonly trimmed?: { readonly start: number; readonly end: number; readonly captured: number } | undefined;
}

/** Options of a provider instance or output whose plugin declared no more precise type. */
export type ProviderOptionsRecord = Readonly<Record<string, unknown>>;

/**
 * Provider-instance options by plugin name, extended by each provider plugin through
 * declaration merging:
 *
 * ```ts
 * declare module 'koto-voice' {
 *   interface ProviderOptionsRegistry { 'koto-plugin-acme': AcmeOptions }
 * }
 * ```
 *
 * `definePlugin` then requires that plugin's `provider` schema to produce `AcmeOptions`, and
 * `ProviderOptionsOf<'koto-plugin-acme'>` names the type anywhere.
 */
export interface ProviderOptionsRegistry {}

/** The declared options of a plugin's provider instances; the generic record for an undeclared plugin. */
export type ProviderOptionsOf<Name extends string> = Name extends keyof ProviderOptionsRegistry
  ? ProviderOptionsRegistry[Name]
  : ProviderOptionsRecord;

/** A provider instance from `providers.<name>`, validated by the plugin named in `use`. */
export interface ProviderRef<Options = ProviderOptionsRecord> {
  readonly name: string;
  readonly use: string;
  readonly options: Options;
}

export type SessionState = 'idle' | 'recording' | 'transcribing' | 'correcting' | 'output' | 'done' | 'failed' | 'cancelled';

/**
 * The window that has the keyboard focus, as the desktop names it (`focusedWindow` hook). What
 * per-application behaviour keys on: profiles, the paste key of a terminal.
 */
export interface FocusedWindow {
  /** X11: the class part of WM_CLASS ("XTerm"); sway/KDE: the app id (or an XWayland window's class); Hyprland: the class; macOS: the application's name. */
  readonly app: string;
  /** X11 (and XWayland under sway): the instance part of WM_CLASS ("xterm", settable with -name). */
  readonly instance?: string | undefined;
  /** The window title (may be empty). */
  readonly title: string;
  /** The owning process, when the desktop says. */
  readonly pid?: number | undefined;
  /** The desktop's own id of the window (X11: "0x1a00007"; sway: the con id; Hyprland: the address). */
  readonly id?: string | undefined;
  /** Who answered: `x11`, `sway`, `hyprland`, `kde`, `macos`, or a plugin's own name for its desktop. */
  readonly desktop: string;
}

/** What a `focusedWindow` tap is asked with. */
export interface FocusedWindowRequest {
  /** The environment to read the desktop from (DISPLAY, WAYLAND_DISPLAY, SWAYSOCK, …): the kernel's. */
  readonly env: Readonly<NodeJS.ProcessEnv>;
  /** Aborted at the caller's cancel or the kernel's deadline: stop asking then. */
  readonly signal: AbortSignal;
}

/** What every hook of one dictation sees. The config is the snapshot the session started with. */
export interface SessionContext {
  readonly id: string;
  readonly config: KotoConfig;
  readonly signal: AbortSignal;
  readonly startedAt: number;
  /** `live`: recording from an audio source (frames arrive on `audioFrame`); `file`: audio given up front. */
  readonly mode: 'live' | 'file';
  readonly state: SessionState;
  /** Milliseconds per stage, filled as the session runs. */
  readonly timings: Readonly<Record<string, number>>;
  /** Provider instances this session will use, so sessionStart taps can pre-warm them. */
  readonly providers: {
    readonly asr?: ProviderRef | undefined;
    readonly correction?: ProviderRef | undefined;
    /** Fallbacks a hedge (`hedgeAfterMs`) starts in parallel: worth pre-warming as well. */
    readonly hedges?: readonly ProviderRef[] | undefined;
  };
  /** The profile applied (its settings are already in `config`), or undefined for the base config. */
  readonly profile?: string | undefined;
  /** The window that had the focus when the session started (key-down), if it was asked and known. */
  readonly window?: FocusedWindow | undefined;
}

export interface AsrRequest<Options = ProviderOptionsRecord> {
  readonly session: SessionContext;
  readonly provider: ProviderRef<Options>;
  readonly audio: AudioData;
  readonly model: string | undefined;
  readonly language: string | undefined;
  readonly prompt: string | undefined;
  readonly temperature: number | undefined;
  readonly stream: boolean;
  readonly dictionary: readonly string[];
  readonly signal: AbortSignal;
  /** When the stage's deadline falls (ms since epoch): a plugin's own waits (a 429's retry-after) must not go past it. */
  readonly deadline?: number | undefined;
  /** Streaming providers report interim text here; the kernel fans it out on the `interim` hook. */
  readonly onInterim: (text: string) => void;
}

/**
 * What one provider call used, as the provider reported it (its `usage`): the kernel records it
 * and prices it. Absent fields are unknown, never zero.
 */
export interface ProviderUsage {
  readonly inputTokens?: number | undefined;
  readonly outputTokens?: number | undefined;
  /** Audio length the provider billed (`usage.seconds`, `duration`). */
  readonly audioSeconds?: number | undefined;
}

export interface AsrResult {
  readonly text: string;
  readonly model?: string | undefined;
  readonly language?: string | undefined;
  readonly durationSec?: number | undefined;
  /** Interim texts seen while streaming (fed to correction as `{{interim_history}}`). */
  readonly interimHistory?: readonly string[] | undefined;
  /** Things the user should know (e.g. "realtime stream failed, uploaded instead"); added to the record. */
  readonly warnings?: readonly string[] | undefined;
  readonly usage?: ProviderUsage | undefined;
}

export interface CorrectionRequest<Options = ProviderOptionsRecord> {
  readonly session: SessionContext;
  readonly provider: ProviderRef<Options>;
  readonly text: string;
  readonly model: string | undefined;
  readonly dictionary: readonly string[];
  readonly interimHistory: readonly string[];
  /** The provider-neutral correction settings (the `correction` section without wire fields). */
  readonly settings: CorrectionSettings;
  /**
   * Provider-specific keys the user wrote in the `correction` section (OpenAI's `protocol`,
   * `topP`, `maxTokensParam`, `reasoningEffort`), for the provider that understands them: parse
   * them with a schema of your own; ignore keys you do not know.
   */
  readonly providerOptions: ProviderOptionsRecord;
  readonly systemPrompt: string | undefined;
  readonly userPrompt: string | undefined;
  readonly signal: AbortSignal;
  /** When the stage's deadline falls (ms since epoch): a plugin's own waits must not go past it. */
  readonly deadline?: number | undefined;
  readonly onDelta: (text: string) => void;
}

/** What a correction request says of the user's correction settings, whatever the provider. */
export interface CorrectionSettings {
  readonly enabled: boolean;
  /** Stream the answer when the provider can (`onDelta`). */
  readonly stream: boolean;
  readonly temperature?: number | undefined;
  readonly maxTokens?: number | undefined;
  /** The stage's time budget (`correction.timeoutMs`); `request.deadline` is when it ends. */
  readonly timeoutMs: number;
  /** Retries the kernel makes of a retryable failure (never retry yourself). */
  readonly retries: number;
}

export interface CorrectionResult {
  /** `null` means "no correction" (empty output, unterminated <think>): the raw text is used. */
  readonly text: string | null;
  readonly model?: string | undefined;
  /** Why there is no correction (`content filter`, `cut off at max tokens`), for the user's warning. */
  readonly reason?: string | undefined;
  readonly usage?: ProviderUsage | undefined;
}

export interface TranscriptValue {
  readonly session: SessionContext;
  readonly text: string;
}

export interface OutputRequest<Options = ProviderOptionsRecord> {
  readonly session: SessionContext;
  readonly name: string;
  readonly text: string;
  readonly raw: string;
  readonly options: Options;
  readonly signal: AbortSignal;
  /** Reports a partial delivery (pasting failed, the text is on the clipboard) on the session record. */
  readonly warn: (message: string) => void;
}

export interface InterimEvent {
  readonly session: SessionContext;
  readonly stage: 'asr' | 'correction';
  readonly text: string;
}

export interface SessionRecord {
  readonly id: string;
  readonly state: SessionState;
  readonly input: string;
  readonly raw: string | undefined;
  readonly text: string | undefined;
  readonly fallback: boolean;
  readonly asrProvider: string | undefined;
  readonly asrModel: string | undefined;
  readonly correctionProvider: string | undefined;
  readonly correctionModel: string | undefined;
  readonly audioPath: string | undefined;
  readonly timings: Readonly<Record<string, number>>;
  readonly error: { readonly code: string; readonly message: string } | undefined;
  readonly warnings: readonly string[];
  /** Every provider call of the session in order: who answered, who failed and why, who lost a hedge. */
  readonly attempts?: readonly ProviderAttempt[] | undefined;
  /** Estimated cost of the session's provider calls (USD); null when a call's price is unknown. */
  readonly cost?: number | null | undefined;
  /** The profile the session used (`profiles[].name`), or undefined for the base config. */
  readonly profile?: string | undefined;
}

/** One provider call of a session (`asr.fallback`, hedging): recorded on the session and in the history. */
export interface ProviderAttempt {
  readonly stage: 'asr' | 'correction';
  readonly provider: string;
  readonly model: string | undefined;
  /**
   * answered: its answer was used; failed: it failed (error says why) and the next provider was
   * asked; aborted: a faster provider answered first and this request was cancelled.
   */
  readonly outcome: 'answered' | 'failed' | 'aborted';
  /** Started in parallel because the provider before it had not answered within `hedgeAfterMs`. */
  readonly hedged: boolean;
  readonly ms: number;
  readonly error?: { readonly code: string; readonly message: string } | undefined;
  readonly usage?: ProviderUsage | undefined;
  /** Audio seconds sent (ASR). */
  readonly audioSeconds?: number | undefined;
  /** USD; null when unknown. */
  readonly cost?: number | null | undefined;
}

/** Options the kernel builds its undici Agent from; plugins may adjust them in `transportOptions`. */
export interface TransportAgentOptions {
  allowH2: boolean;
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
  keepAliveTimeout: number;
  keepAliveMaxTimeout: number;
  pingInterval: number;
  connections: number;
  ca: string | undefined;
  proxy: string;
}

/** One outgoing request as the `request` hook sees it; taps return it with headers added. */
export interface OutgoingRequest {
  readonly origin: string;
  readonly path: string;
  readonly method: string;
  readonly headers: Record<string, string>;
}

export interface ReadyContext {
  readonly config: KotoConfig;
}

/** What starts and stops recordings: the control socket, signals, and trigger plugins (hotkeys). */
export type TriggerAction = 'start' | 'stop' | 'toggle' | 'cancel';

export interface TriggerEvent {
  /** Who pulled the trigger, for the log and status: `hotkey`, `cli`, `signal`. */
  readonly source: string;
  /**
   * When the user acted (ms since the epoch, `performance.timeOrigin + performance.now()`): the
   * daemon measures key-down → first captured sample from it. Absent: when the host received it.
   */
  readonly at?: number | undefined;
  /** Hands-free: the recording ends by itself after `audio.silenceMs` of silence following speech. */
  readonly vad?: boolean | undefined;
}

/**
 * Handed to the `daemon` hook by a long-running host (the daemon) once it serves requests.
 * Trigger plugins (hotkeys) start listening there, audio sources may stay warm (pre-roll), and
 * both stop when `signal` aborts. A one-shot CLI run or a Node API kernel never calls it.
 */
export interface DaemonHost {
  /** Starts/stops/toggles/cancels the recording, exactly as the control socket would. */
  dispatch(action: TriggerAction, event: TriggerEvent): Promise<unknown>;
  /**
   * What `koto status` shows under `plugins.<plugin>` (JSON); a `summary` string is also printed
   * on the status line. `undefined` removes the entry.
   */
  report(plugin: string, status: Readonly<Record<string, unknown>> | undefined): void;
  /** Aborted when the host shuts down. */
  readonly signal: AbortSignal;
}

/** A live recording's capture state, for cues and meters (`recording` hook). */
export interface RecordingEvent {
  readonly session: SessionContext;
  /** started: the audio source is capturing; stopped: capture ended (stop or maximum length); cancelled: discarded. */
  readonly state: 'started' | 'stopped' | 'cancelled';
  /** Audio kept from before the trigger (pre-roll), in ms; on `started`. */
  readonly preRollMs?: number | undefined;
}

export interface ConfigChange {
  readonly config: KotoConfig;
  readonly previous: KotoConfig;
  /** Top-level sections whose value changed. */
  readonly sections: readonly string[];
  readonly generation: number;
}

export interface ProbeRequest<Options = ProviderOptionsRecord> {
  readonly provider: ProviderRef<Options>;
  readonly signal: AbortSignal;
}

export interface ProbeResult {
  /** Reachable and credentials accepted. */
  readonly ok: boolean;
  /** One line: what was checked, or what is wrong and how to fix it. Never a secret. */
  readonly detail: string;
}
