/**
 * How a provider plugin streams a live recording into a realtime transcription session with
 * the kernel's hooks as they are:
 *
 * - `sessionStart` (live sessions whose ASR provider is this plugin's, with `realtime` on): open
 *   the socket, so it is warm before the first frame;
 * - `audioFrame`: push each captured frame into the session's {@link RealtimeFeed};
 * - `asr` (the plugin's own tap calls {@link RealtimeStreams.finish}): instead of uploading,
 *   await the feed's final transcript; when the feed failed (socket refused or dropped,
 *   `.failed`, `error`, timeout, empty text) return undefined, and the tap uploads the
 *   recording the kernel saved: nothing is lost;
 * - `sessionEnd` / `close` / the session's signal: close whatever is still open.
 *
 * Interim text arrives while the user speaks: it goes out at once through `api.interim` (the
 * kernel's `interim` hook and the caller's listener), and is kept for `{{interim_history}}`.
 */

import type {
  AsrRequest,
  AsrResult,
  AudioFrame,
  KotoHttp,
  PluginApi,
  ProviderOptionsRecord,
  ProviderRef,
  SessionContext,
} from 'koto-voice';
import { describeError } from 'koto-voice';
import type { WireTarget } from './client.ts';
import type { ProviderOptions } from './options.ts';
import {
  RealtimeTranscription,
  realtimeSendsKeywords,
  realtimeUrl,
  transcriptionSessionUpdate,
  type RealtimeTarget,
  type SessionUpdateEvent,
} from './realtime.ts';
import { realtimeSettings, type RealtimeSettings } from './realtime-options.ts';

/** The capture rate when a frame does not say (every audio source in Koto captures at 16 kHz). */
export const DEFAULT_CAPTURE_RATE = 16_000;

/** What a provider plugin decides for one live session. */
export interface RealtimePlan {
  readonly target: RealtimeTarget;
  readonly update: SessionUpdateEvent;
  readonly settings: Pick<RealtimeSettings, 'chunkMs' | 'finalTimeoutMs'>;
}

export interface RealtimeStreamsOptions<Options = ProviderOptionsRecord> {
  /** The plugin's name: ASR providers with this `use` are considered. */
  readonly name: string;
  /** The plan for a provider instance in a session, or undefined when it does not stream. May throw (logged). */
  plan(ref: ProviderRef<Options>, session: SessionContext): RealtimePlan | undefined;
}

interface Entry {
  readonly feed: RealtimeTranscription;
  readonly model: string;
  readonly provider: string;
  /** Capture samples pushed, to check the assumed rate against the frames' timestamps. */
  samples: number;
  rateChecked: boolean;
  /** Until the first frame: the first-frame deadline; then the session's longest possible life. */
  timer: NodeJS.Timeout;
  readonly lifetimeMs: number;
}

/**
 * A live session whose audio source never delivers a frame (it failed to open: the kernel
 * then ends the session without sessionEnd) must not keep a socket open for long.
 */
export const FIRST_FRAME_TIMEOUT_MS = 30_000;

export interface RealtimeStreams {
  /**
   * The final transcript of the session's stream, or undefined when the session has none or
   * it failed (the reason is logged): the caller then uploads the recording.
   */
  finish(
    request: AsrRequest,
    onInterim: (text: string) => void,
  ): Promise<(AsrResult & { readonly interimHistory: readonly string[] }) | undefined>;
  /** Open streams (for diagnostics and tests). */
  readonly open: number;
}

/** Wires realtime streaming into a provider plugin's hooks. */
export function installRealtime<Options>(api: PluginApi<Options>, options: RealtimeStreamsOptions<Options>): RealtimeStreams {
  const { name } = options;
  const streams = new Map<string, Entry>();

  const drop = (id: string) => {
    const entry = streams.get(id);
    if (!entry) return;
    streams.delete(id);
    clearTimeout(entry.timer);
    entry.feed.close();
  };

  api.hooks.sessionStart.tap(name, (session) => {
    if (session.mode !== 'live') return;
    const ref = api.ownInstance(session.providers.asr);
    if (!ref || streams.has(session.id)) return;
    let plan: RealtimePlan | undefined;
    try {
      plan = options.plan(ref, session);
    } catch (err) {
      api.log.warn(`provider "${ref.name}": realtime transcription is off for this recording: ${describeError(err)}`);
      return;
    }
    if (!plan) return;
    const feed = RealtimeTranscription.open(plan.target, plan.update, {
      chunkMs: plan.settings.chunkMs,
      finalTimeoutMs: plan.settings.finalTimeoutMs,
      // Interim text reaches a live display while the user is still speaking.
      onInterim: (text) => api.interim(session, 'asr', text),
      onDebug: (message) => api.log.debug(`provider "${ref.name}": ${message}`, { session: session.id }),
    });
    // A session that never reaches sessionEnd must not keep a socket: see FIRST_FRAME_TIMEOUT_MS.
    const lifetimeMs = session.config.daemon.maxRecordingMs + session.config.asr.timeoutMs + plan.settings.finalTimeoutMs;
    const timer = setTimeout(() => drop(session.id), FIRST_FRAME_TIMEOUT_MS);
    timer.unref();
    streams.set(session.id, {
      feed,
      model: plan.update.session.audio.input.transcription.model,
      provider: ref.name,
      samples: 0,
      rateChecked: false,
      timer,
      lifetimeMs,
    });
    session.signal.addEventListener('abort', () => drop(session.id), { once: true });
  });

  api.hooks.audioFrame.tap(name, (session, frame) => {
    const entry = streams.get(session.id);
    if (!entry) return;
    if (entry.samples === 0) {
      clearTimeout(entry.timer);
      entry.timer = setTimeout(() => drop(session.id), entry.lifetimeMs);
      entry.timer.unref();
    }
    const rate = frameRate(frame);
    // Frames carry their start time: once there is enough audio, check that the assumed rate
    // matches the clock; a wrong rate would stream mistuned audio, so stop streaming instead.
    if (!entry.rateChecked && frame.timestamp >= 250 && entry.samples > 0) {
      entry.rateChecked = true;
      const measured = (entry.samples * 1000) / frame.timestamp;
      if (Math.abs(measured / rate - 1) > 0.05) {
        api.log.warn(
          `provider "${entry.provider}": the recording does not look like ${rate} Hz audio (about ${Math.round(measured)} Hz); it will be uploaded instead of streamed`,
        );
        drop(session.id);
        return;
      }
    }
    entry.samples += frame.samples.length;
    entry.feed.push(frame.samples, rate);
  });

  api.hooks.sessionEnd.tap(name, (record) => drop(record.id));
  api.hooks.close.tapPromise(name, async () => {
    for (const id of [...streams.keys()]) drop(id);
  });

  return {
    get open() {
      return streams.size;
    },
    async finish(request, onInterim) {
      const entry = streams.get(request.session.id);
      if (!entry) return undefined;
      // Taken for good: a retry of the ASR stage uploads.
      streams.delete(request.session.id);
      clearTimeout(entry.timer);
      const { feed } = entry;
      // The stream heard the whole capture, before any silence was trimmed from the upload.
      const recorded = request.audio.trimmed?.captured ?? request.audio.pcm?.samples.length;
      if (recorded !== undefined && recorded !== entry.samples) {
        // The stream missed part of the recording (it started late, or stopped streaming): the upload has it all.
        api.log.warn(
          `provider "${entry.provider}": ${entry.samples} of ${recorded} recorded samples were streamed; uploading the recording instead`,
        );
        feed.close();
        return undefined;
      }
      feed.onInterim = onInterim;
      try {
        const text = (await feed.finish(request.signal)).trim();
        if (!text) {
          api.log.warn(`provider "${entry.provider}": the realtime transcript is empty; uploading the recording to make sure`);
          return undefined;
        }
        return { text, model: entry.model, language: request.language, interimHistory: feed.interimHistory, usage: feed.usage };
      } catch (err) {
        // The kernel's own deadline or a cancel: not a reason to start an upload.
        if (request.signal.aborted) throw err;
        api.log.warn(`provider "${entry.provider}": realtime transcription failed, uploading the recording instead: ${describeError(err)}`);
        return undefined;
      } finally {
        feed.onInterim = undefined;
        feed.close();
      }
    },
  };
}

/** The frame's own rate when the kernel provides one (proposed `AudioFrame.sampleRate`), else 16 kHz. */
function frameRate(frame: AudioFrame): number {
  const rate = (frame as AudioFrame & { readonly sampleRate?: unknown }).sampleRate;
  return typeof rate === 'number' && Number.isInteger(rate) && rate > 0 ? rate : DEFAULT_CAPTURE_RATE;
}

/**
 * The OpenAI plan: `{baseUrl}/realtime?intent=transcription` (or `realtime.url`), the instance's
 * auth headers, and a session update from the dictation's settings (model: `realtime.model`,
 * else `asr.model`, else the instance's `asrModel`).
 */
export function openaiRealtimePlan(
  http: Pick<KotoHttp, 'websocket'>,
  targetFor: (ref: ProviderRef<ProviderOptions>, session: SessionContext) => WireTarget,
) {
  return (ref: ProviderRef<ProviderOptions>, session: SessionContext): RealtimePlan | undefined => {
    const options = ref.options;
    const settings = realtimeSettings(options.realtime);
    if (!settings) return undefined;
    // The same endpoint checks and secret registration as every other request of the instance.
    const wire = targetFor(ref, session);
    const config = session.config;
    const model = settings.model ?? config.asr.model ?? options.asrModel;
    const update = transcriptionSessionUpdate({
      model,
      language: config.asr.language,
      prompt: config.asr.prompt,
      dictionary: config.resolved.dictionary,
      keywords: realtimeSendsKeywords(options.keywords, model),
      turnDetection: settings.turnDetection,
      noiseReduction: settings.noiseReduction,
    });
    const target: RealtimeTarget = {
      provider: ref.name,
      http,
      url: realtimeUrl(options.baseUrl, options.query, settings.url),
      headers: () => wire.headers('transcriptions'),
      secrets: wire.secrets,
    };
    return { target, update, settings };
  };
}
