/**
 * Streaming transcription over the OpenAI Realtime WebSocket (GA
 * protocol, checked against the OpenAPI spec's `RealtimeClientEventSessionUpdate`,
 * `RealtimeTranscriptionSessionCreateRequestGA`, `RealtimeClientEventInputAudioBuffer*` and
 * `RealtimeServerEventConversationItemInputAudioTranscription*` schemas):
 *
 * 1. connect to `wss://{host}/v1/realtime?intent=transcription` (no `model` in the URL: that
 *    would make a conversation session) through the kernel's client (`api.http.websocket`);
 * 2. send `session.update` with `session.type: "transcription"`, `audio.input.format`
 *    `audio/pcm` at 24 kHz, `audio.input.transcription` (model, language, prompt / keywords) and
 *    `audio.input.turn_detection` (`null` for push-to-talk, `server_vad` for hands-free);
 * 3. stream the capture as `input_audio_buffer.append` events (base64 of 16-bit little-endian
 *    mono PCM, resampled 16 → 24 kHz by {@link StreamingResampler});
 * 4. at stop, `input_audio_buffer.commit` (and, with server VAD, `input_audio_buffer.clear` as an
 *    ordering barrier), then wait for `conversation.item.input_audio_transcription.completed` of
 *    every committed item; `.delta` events are interim text, `.failed` and `error` fail the feed.
 *
 * Another provider speaking this protocol (Azure) builds its own socket URL and reuses
 * {@link transcriptionSessionUpdate} and {@link RealtimeTranscription} through the public
 * `koto-voice/openai-wire`; the URL builders here are OpenAI's and private.
 *
 * @module
 */

import { endianness } from 'node:os';
import { describeError, KotoError, kotoError, StreamingResampler, type KotoHttp, type ProviderUsage } from 'koto-voice';
import { foldVocabulary } from './asr.ts';
import { displayUrl, joinUrl, scrub, sumUsage, usageOf, USER_AGENT } from './client.ts';
import type { serverVadSchema } from './realtime-options.ts';
import type { z } from 'zod';

export {
  realtimeOptionSchema,
  realtimeSettings,
  realtimeSettingsSchema,
  type RealtimeOption,
  type RealtimeSettings,
} from './realtime-options.ts';

/** The only PCM rate the Realtime API accepts (`RealtimeAudioFormats`: `audio/pcm`, rate 24000). */
export const REALTIME_SAMPLE_RATE = 24_000;

/**
 * What the kernel's frame path drives: `push` every captured frame while the user speaks,
 * `finish` at stop for the final transcript (rejects when the stream failed: upload instead).
 */
export interface RealtimeFeed {
  push(frame: Int16Array, sampleRate: number): void;
  finish(signal?: AbortSignal): Promise<string>;
}

// ---------------------------------------------------------------------------
// URLs and headers
// ---------------------------------------------------------------------------

function toWebSocketScheme(url: URL): URL {
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  return url;
}

/**
 * The transcription WebSocket of an OpenAI-style base URL: `{baseUrl}/realtime` with `https` →
 * `wss`, the instance's extra query, and `intent=transcription`. `override` replaces the URL
 * (a gateway that serves the socket elsewhere); its own query is kept.
 */
export function realtimeUrl(baseUrl: string, query: Readonly<Record<string, string>> = {}, override?: string): URL {
  const url = toWebSocketScheme(override ? new URL(override) : joinUrl(baseUrl, '/realtime', {}));
  url.hash = '';
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  if (!url.searchParams.has('intent')) url.searchParams.set('intent', 'transcription');
  return url;
}

// ---------------------------------------------------------------------------
// The session update
// ---------------------------------------------------------------------------

/** Models that take `keywords` in a realtime transcription session (spec: `AudioTranscription.keywords`). */
export const REALTIME_KEYWORD_MODELS = /^gpt-(?:live-)?transcribe(?:$|-)/;
/** Takes neither prompt nor keywords, and no turn detection (spec: `AudioTranscription.prompt`, `RealtimeTurnDetection`). */
export const PROMPTLESS_REALTIME_MODELS = /^gpt-realtime-whisper(?:$|-)/;

/** Whether dictionary terms go out as `keywords` (`auto`: models known to take them), else into `prompt`. */
export function realtimeSendsKeywords(setting: 'auto' | boolean, model: string): boolean {
  return setting === 'auto' ? REALTIME_KEYWORD_MODELS.test(model) : setting;
}

export type TurnDetection = 'off' | 'server_vad' | z.output<typeof serverVadSchema>;

export interface RealtimeSessionParams {
  /** Transcription model (Azure: the deployment name). */
  readonly model: string;
  readonly language?: string | undefined;
  readonly prompt?: string | undefined;
  /** Dictionary terms: `keywords` when {@link keywords}, else folded into the prompt. */
  readonly dictionary?: readonly string[] | undefined;
  readonly keywords?: boolean | undefined;
  readonly turnDetection?: TurnDetection | undefined;
  readonly noiseReduction?: 'near_field' | 'far_field' | undefined;
}

/** `AudioTranscription` as sent. */
export interface RealtimeTranscriptionConfig {
  model: string;
  language?: string;
  prompt?: string;
  keywords?: string[];
}

/** The `session.update` client event of a transcription session. */
export interface SessionUpdateEvent {
  readonly type: 'session.update';
  readonly session: {
    readonly type: 'transcription';
    readonly audio: {
      readonly input: {
        readonly format: { readonly type: 'audio/pcm'; readonly rate: 24000 };
        readonly transcription: RealtimeTranscriptionConfig;
        readonly turn_detection: null | {
          type: 'server_vad';
          threshold?: number;
          prefix_padding_ms?: number;
          silence_duration_ms?: number;
        };
        readonly noise_reduction?: { readonly type: 'near_field' | 'far_field' };
      };
    };
  };
}

/** Builds the `session.update` for a transcription session from the dictation's settings. */
export function transcriptionSessionUpdate(params: RealtimeSessionParams): SessionUpdateEvent {
  const promptless = PROMPTLESS_REALTIME_MODELS.test(params.model);
  const terms = (params.dictionary ?? []).map((t) => t.trim()).filter((t) => t !== '');
  const useKeywords = !promptless && params.keywords === true && terms.length > 0;
  const transcription: RealtimeTranscriptionConfig = { model: params.model };
  if (params.language) transcription.language = params.language;
  if (!promptless) {
    const prompt = useKeywords ? params.prompt?.trim() : foldVocabulary(params.prompt?.trim() || undefined, terms);
    if (prompt) transcription.prompt = prompt;
    if (useKeywords) transcription.keywords = terms;
  }
  const detection = promptless ? 'off' : (params.turnDetection ?? 'off');
  let turnDetection: SessionUpdateEvent['session']['audio']['input']['turn_detection'] = null;
  if (detection === 'server_vad') turnDetection = { type: 'server_vad' };
  else if (typeof detection === 'object') {
    turnDetection = { type: 'server_vad' };
    if (detection.threshold !== undefined) turnDetection.threshold = detection.threshold;
    if (detection.prefixPaddingMs !== undefined) turnDetection.prefix_padding_ms = detection.prefixPaddingMs;
    if (detection.silenceDurationMs !== undefined) turnDetection.silence_duration_ms = detection.silenceDurationMs;
  }
  return {
    type: 'session.update',
    session: {
      type: 'transcription',
      audio: {
        input: {
          format: { type: 'audio/pcm', rate: REALTIME_SAMPLE_RATE },
          transcription,
          turn_detection: turnDetection,
          ...(params.noiseReduction ? { noise_reduction: { type: params.noiseReduction } } : {}),
        },
      },
    },
  };
}

/** 16-bit samples as little-endian bytes, base64 (what `input_audio_buffer.append` carries). */
export function pcmToBase64(samples: Int16Array): string {
  const bytes = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  if (endianness() === 'LE') return bytes.toString('base64');
  const swapped = Buffer.from(bytes);
  swapped.swap16();
  return swapped.toString('base64');
}

// ---------------------------------------------------------------------------
// The streaming session
// ---------------------------------------------------------------------------

/** The part of a WebSocket (undici's, as `api.http.websocket` returns it) the feed uses. */
export interface RealtimeSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'error' | 'close', listener: (event: never) => void): void;
}

/** Where one realtime session goes and how it authenticates. */
export interface RealtimeTarget {
  /** Provider instance name: every error names it. */
  readonly provider: string;
  /** The kernel's client (`api.http`): the socket is opened through its HTTP/1.1 agent. */
  readonly http: Pick<KotoHttp, 'websocket'>;
  readonly url: URL;
  /** Handshake headers (auth); may be async (token refresh). The `request` hook decorates them further. */
  headers(): Record<string, string> | Promise<Record<string, string>>;
  /** Values scrubbed from error messages. */
  readonly secrets?: readonly string[] | undefined;
}

export interface RealtimeOptions {
  /** Audio per append event, ms of output (default 100). */
  readonly chunkMs?: number | undefined;
  /** Longest wait in finish() for the final transcript (default 15 s). */
  readonly finalTimeoutMs?: number | undefined;
  /** Most bytes queued while the socket opens, or unsent on a slow network, before the feed gives up (default 24 MiB). */
  readonly maxBacklogBytes?: number | undefined;
  /** Interim text (the whole dictation so far) as deltas and segments arrive. */
  readonly onInterim?: ((text: string) => void) | undefined;
  /** One-line progress notes (socket open, segment done, failure), for a debug log. Never transcript text. */
  readonly onDebug?: ((message: string) => void) | undefined;
}

/** `connecting` → `open` → `done`; or `failed` (see `failure`) / `closed` (by the caller). */
export type RealtimeState = 'connecting' | 'open' | 'done' | 'failed' | 'closed';

interface Waiter {
  resolve(text: string): void;
  reject(err: unknown): void;
}

const OPEN = 1;
const COMMIT_EMPTY = /commit_empty|buffer too small|buffer is empty/i;

/**
 * One realtime transcription session: a {@link RealtimeFeed} over a WebSocket. Opened at the
 * start of a live recording (warm before the first frame), fed while the user speaks, finished
 * at stop. Any failure (socket refused or dropped, `.failed`, `error`, timeout) makes
 * `finish()` reject, so the caller uploads the saved recording instead: nothing is lost.
 */
export class RealtimeTranscription implements RealtimeFeed {
  readonly target: RealtimeTarget;
  readonly update: SessionUpdateEvent;
  readonly #options: RealtimeOptions;
  readonly #chunkSamples: number;
  readonly #maxBacklog: number;
  readonly #vad: boolean;
  #socket: RealtimeSocket | undefined;
  #socketError: string | undefined;
  #socketErrorCause: unknown;
  #errorTimer: NodeJS.Timeout | undefined;
  #state: RealtimeState = 'connecting';
  #failure: KotoError | undefined;
  /** Serialised client events waiting for the socket to open. */
  #outbox: string[] = [];
  #outboxBytes = 0;
  #resampler: StreamingResampler | undefined;
  #pending: Int16Array[] = [];
  #pendingSamples = 0;
  #appended = 0;
  #samplesIn = 0;
  #events = 0;
  #finishing: Promise<string> | undefined;
  #waiter: Waiter | undefined;
  /** The client event id of the final commit, and whether the server answered it. */
  #commitId: string | undefined;
  #commitAnswered = false;
  #barrierId: string | undefined;
  #barrierAnswered = false;
  /** Items in the order the server committed (or first mentioned) them. */
  readonly #items: string[] = [];
  readonly #partial = new Map<string, string>();
  readonly #final = new Map<string, string>();
  #interim = '';
  readonly #history: string[] = [];
  /** Each completed segment's `usage` (undefined where a segment reported none). */
  readonly #usage: (ProviderUsage | undefined)[] = [];
  #listener: ((text: string) => void) | undefined;

  private constructor(target: RealtimeTarget, update: SessionUpdateEvent, options: RealtimeOptions) {
    this.target = target;
    this.update = update;
    this.#options = options;
    this.#chunkSamples = Math.max(1, Math.round(((options.chunkMs ?? 100) * REALTIME_SAMPLE_RATE) / 1000));
    this.#maxBacklog = options.maxBacklogBytes ?? 24 * 1024 * 1024;
    this.#vad = update.session.audio.input.turn_detection !== null;
    this.#listener = options.onInterim;
    // The session update goes first, before any audio, whenever the socket opens.
    this.#send(update);
  }

  /** Starts connecting at once and returns; frames pushed before the socket opens are queued. */
  static open(target: RealtimeTarget, update: SessionUpdateEvent, options: RealtimeOptions = {}): RealtimeTranscription {
    const feed = new RealtimeTranscription(target, update, options);
    void feed.#connect();
    return feed;
  }

  get state(): RealtimeState {
    return this.#state;
  }

  /** Why the feed failed, if it did. */
  get failure(): KotoError | undefined {
    return this.#failure;
  }

  /** The dictation's text so far (final segments, then partial ones). */
  get interim(): string {
    return this.#interim;
  }

  /** The streamed (delta) text of each finished segment, in order: context for correction. */
  /** What the stream used, summed over its segments; undefined when a segment did not say. */
  get usage(): ProviderUsage | undefined {
    return sumUsage(this.#usage);
  }

  get interimHistory(): readonly string[] {
    return [...this.#history];
  }

  /** 24 kHz samples sent (or queued) so far. */
  get appendedSamples(): number {
    return this.#appended;
  }

  /**
   * Where interim text goes from now on (e.g. the ASR request's `onInterim` once it exists);
   * the text so far is replayed to it at once.
   */
  set onInterim(listener: ((text: string) => void) | undefined) {
    this.#listener = listener;
    if (listener && this.#interim) this.#tell(this.#interim);
  }

  push(frame: Int16Array, sampleRate: number): void {
    if (this.#state === 'failed' || this.#state === 'closed' || this.#finishing) return;
    if (!this.#resampler) {
      try {
        this.#resampler = new StreamingResampler(sampleRate, REALTIME_SAMPLE_RATE);
      } catch (err) {
        this.#fail(this.#error(`cannot resample ${sampleRate} Hz audio: ${describeError(err)}`));
        return;
      }
    } else if (this.#resampler.inRate !== sampleRate) {
      this.#fail(this.#error(`the capture rate changed from ${this.#resampler.inRate} to ${sampleRate} Hz mid-recording`));
      return;
    }
    this.#samplesIn += frame.length;
    this.#queueAudio(this.#resampler.push(frame), false);
  }

  /**
   * Sends what is left and commits, then resolves with the final transcript once every
   * committed segment is transcribed. Rejects when the stream failed or `finalTimeoutMs`
   * passed. Idempotent.
   */
  finish(signal?: AbortSignal): Promise<string> {
    this.#finishing ??= this.#finish(signal);
    return this.#finishing;
  }

  /** Closes the socket (normal closure); a pending finish() rejects. */
  close(): void {
    if (this.#state === 'closed') return;
    const wasDone = this.#state === 'done';
    if (!wasDone && this.#state !== 'failed') this.#reject(kotoError('KOTO_ERR_ABORTED', { what: 'the realtime transcription' }));
    this.#state = 'closed';
    this.#outbox = [];
    this.#pending = [];
    try {
      this.#socket?.close(1000, wasDone ? 'done' : 'closed');
    } catch {
      // Already closing.
    }
  }

  async #connect(): Promise<void> {
    const { target } = this;
    let headers: Record<string, string>;
    try {
      headers = { 'user-agent': USER_AGENT, ...(await target.headers()) };
    } catch (err) {
      this.#fail(KotoError.is(err) ? err : this.#network(`could not get credentials: ${describeError(err)}`, err));
      return;
    }
    if (this.#state !== 'connecting') return;
    let socket: RealtimeSocket;
    try {
      socket = target.http.websocket(target.url.href, { headers }) as unknown as RealtimeSocket;
    } catch (err) {
      this.#fail(KotoError.is(err) ? err : this.#network(describeError(err), err));
      return;
    }
    this.#socket = socket;
    socket.addEventListener('open', () => this.#opened());
    socket.addEventListener('message', (event: { data: unknown }) => {
      try {
        this.#message(event.data);
      } catch (err) {
        this.#fail(this.#error(`a realtime event could not be handled: ${describeError(err)}`));
      }
    });
    // A failing socket fires `error` (with little to say) and then `close` (with the code): the
    // close reports both. Should no close follow, the error alone fails the feed shortly after.
    socket.addEventListener('error', (event: { message?: string; error?: unknown }) => {
      this.#socketError = event.error ? describeError(event.error) : event.message || undefined;
      this.#socketErrorCause = event.error;
      this.#errorTimer ??= setTimeout(() => this.#closed(undefined, undefined), 1000);
      this.#errorTimer.unref?.();
    });
    socket.addEventListener('close', (event: { code?: number; reason?: string }) => this.#closed(event.code, event.reason));
  }

  #closed(code: number | undefined, reason: string | undefined): void {
    clearTimeout(this.#errorTimer);
    if (this.#state === 'done' || this.#state === 'closed' || this.#state === 'failed') return;
    const how =
      [code === undefined ? undefined : `code ${code}`, reason || undefined, this.#socketError].filter(Boolean).join(', ') || 'no detail';
    const what =
      this.#state === 'connecting' ? 'the realtime socket did not open' : 'the realtime socket closed before the transcript was complete';
    this.#fail(this.#network(`${what} (${how})`, this.#socketErrorCause));
  }

  #opened(): void {
    if (this.#state !== 'connecting') {
      // Closed or failed while the handshake ran.
      try {
        this.#socket?.close(1000, 'closed');
      } catch {
        // Ignore.
      }
      return;
    }
    this.#state = 'open';
    this.#options.onDebug?.(`realtime socket open to ${displayUrl(this.target.url)}`);
    const queued = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const data of queued) this.#write(data);
  }

  #send(event: object): void {
    if (this.#state === 'failed' || this.#state === 'closed' || this.#state === 'done') return;
    const data = JSON.stringify(event);
    if (this.#state === 'connecting') {
      this.#outboxBytes += data.length;
      if (this.#outboxBytes > this.#maxBacklog) {
        this.#fail(this.#error('the realtime socket did not open in time: too much audio is waiting'));
        return;
      }
      this.#outbox.push(data);
      return;
    }
    this.#write(data);
  }

  #write(data: string): void {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return;
    try {
      socket.send(data);
    } catch (err) {
      this.#fail(this.#network(`sending on the realtime socket failed: ${describeError(err)}`, err));
      return;
    }
    if (socket.bufferedAmount > this.#maxBacklog) this.#fail(this.#error('the network cannot keep up with the audio'));
  }

  #queueAudio(samples: Int16Array, force: boolean): void {
    if (samples.length > 0) {
      this.#pending.push(samples);
      this.#pendingSamples += samples.length;
    }
    if (this.#pendingSamples === 0 || (!force && this.#pendingSamples < this.#chunkSamples)) return;
    const chunk = new Int16Array(this.#pendingSamples);
    let offset = 0;
    for (const part of this.#pending) {
      chunk.set(part, offset);
      offset += part.length;
    }
    this.#pending = [];
    this.#pendingSamples = 0;
    this.#appended += chunk.length;
    this.#send({ type: 'input_audio_buffer.append', audio: pcmToBase64(chunk) });
  }

  async #finish(signal: AbortSignal | undefined): Promise<string> {
    if (this.#failure) throw this.#failure;
    if (this.#state === 'closed') throw kotoError('KOTO_ERR_ABORTED', { what: 'the realtime transcription' });
    if (this.#resampler) this.#queueAudio(this.#resampler.flush(), true);
    else this.#queueAudio(new Int16Array(0), true);
    if (this.#appended === 0) {
      this.#done();
      return '';
    }
    this.#commitId = `koto_commit_${this.#appended}`;
    this.#send({ type: 'input_audio_buffer.commit', event_id: this.#commitId });
    if (this.#vad) {
      // With server VAD, segments committed by the server can cross our commit; `cleared` (the
      // answer to this event) comes after every event our commit caused, so it closes the list.
      this.#barrierId = `koto_barrier_${this.#appended}`;
      this.#send({ type: 'input_audio_buffer.clear', event_id: this.#barrierId });
    }
    const timeoutMs = this.#options.finalTimeoutMs ?? 15_000;
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(
          kotoError('KOTO_ERR_TIMEOUT', { what: `the final realtime transcript from provider "${this.target.provider}"`, ms: timeoutMs }),
        );
      }, timeoutMs);
      timer.unref?.();
      const onAbort = () => this.#fail(kotoError('KOTO_ERR_ABORTED', { what: 'the realtime transcription' }, { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#waiter = {
        resolve: (text) => {
          settle();
          resolve(text);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      };
      if (this.#failure) this.#reject(this.#failure);
      else if (signal?.aborted) onAbort();
      else this.#check();
    });
  }

  #message(data: unknown): void {
    if (this.#state === 'failed' || this.#state === 'closed' || this.#state === 'done') return;
    this.#events += 1;
    let event: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer).toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      event = parsed as Record<string, unknown>;
    } catch {
      this.#fail(this.#error('the realtime socket sent a message that is not a JSON event'));
      return;
    }
    const type = typeof event.type === 'string' ? event.type : '';
    const item = typeof event.item_id === 'string' ? event.item_id : undefined;
    switch (type) {
      case 'input_audio_buffer.committed':
        if (item) this.#known(item);
        if (this.#commitId && !this.#vad) this.#commitAnswered = true;
        break;
      case 'input_audio_buffer.cleared':
        if (this.#barrierId) this.#barrierAnswered = true;
        break;
      case 'conversation.item.input_audio_transcription.delta':
        if (item && typeof event.delta === 'string') {
          this.#known(item);
          this.#partial.set(item, (this.#partial.get(item) ?? '') + event.delta);
          this.#emitInterim();
        }
        break;
      case 'conversation.item.input_audio_transcription.completed':
        if (item) {
          this.#known(item);
          const transcript = typeof event.transcript === 'string' ? event.transcript : (this.#partial.get(item) ?? '');
          this.#final.set(item, transcript);
          this.#usage.push(usageOf(event.usage));
          const streamed = this.#partial.get(item)?.trim();
          if (streamed) this.#history.push(streamed);
          this.#options.onDebug?.(`realtime segment ${this.#final.size} transcribed (${transcript.length} chars)`);
          this.#emitInterim();
        }
        break;
      case 'conversation.item.input_audio_transcription.failed': {
        const error = (event.error ?? {}) as Record<string, unknown>;
        this.#fail(this.#upstream(`a segment could not be transcribed: ${describeUpstream(error)}`, error));
        return;
      }
      case 'error': {
        const error = (event.error ?? {}) as Record<string, unknown>;
        // With VAD the final commit may find the buffer already committed: that is not a failure.
        const about = typeof error.event_id === 'string' ? error.event_id : undefined;
        if (about !== undefined && about === this.#commitId && COMMIT_EMPTY.test(`${String(error.code)} ${String(error.message)}`)) {
          this.#commitAnswered = true;
          break;
        }
        this.#fail(this.#upstream(`the realtime session reported an error: ${describeUpstream(error)}`, error));
        return;
      }
      default:
        // session.created / session.updated, speech_started / speech_stopped, segments, rate limits: nothing to do.
        break;
    }
    this.#check();
  }

  #known(item: string): void {
    if (!this.#items.includes(item)) this.#items.push(item);
  }

  #text(partial: boolean): string {
    const parts: string[] = [];
    for (const item of this.#items) {
      const text = this.#final.get(item) ?? (partial ? this.#partial.get(item) : undefined);
      if (text?.trim()) parts.push(text.trim());
    }
    return parts.join(' ');
  }

  #emitInterim(): void {
    const text = this.#text(true);
    if (text === this.#interim) return;
    this.#interim = text;
    this.#tell(text);
  }

  // A listener (a live display) that throws must not break the socket's event dispatch.
  #tell(text: string): void {
    try {
      this.#listener?.(text);
    } catch (err) {
      this.#options.onDebug?.(`an interim listener threw (ignored): ${describeError(err)}`);
    }
  }

  #check(): void {
    if (!this.#waiter || !this.#commitId) return;
    if (this.#vad ? !this.#barrierAnswered : !this.#commitAnswered) return;
    if (!this.#items.every((item) => this.#final.has(item))) return;
    const text = this.#text(false);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    this.#done();
    waiter.resolve(text);
  }

  #done(): void {
    this.#state = 'done';
    this.#options.onDebug?.(
      `realtime transcription done: ${this.#items.length} segment(s), ${this.#appended} samples at 24 kHz from ${this.#samplesIn} captured, ${this.#events} server events`,
    );
    try {
      this.#socket?.close(1000, 'done');
    } catch {
      // Already closing.
    }
  }

  #fail(error: KotoError): void {
    if (this.#state === 'failed' || this.#state === 'closed' || this.#state === 'done') return;
    this.#state = 'failed';
    this.#failure = error;
    this.#outbox = [];
    this.#pending = [];
    this.#options.onDebug?.(`realtime transcription failed: ${error.message}`);
    try {
      this.#socket?.close(1000, 'failed');
    } catch {
      // Already closing.
    }
    this.#reject(error);
  }

  #reject(err: unknown): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(err);
  }

  #network(detail: string, cause: unknown): KotoError {
    return kotoError(
      'KOTO_ERR_NETWORK',
      { origin: displayUrl(this.target.url), detail: scrub(detail, this.target.secrets) },
      { ...(cause === undefined ? {} : { cause }), details: { provider: this.target.provider, retryable: true } },
    );
  }

  #upstream(detail: string, error: Record<string, unknown>): KotoError {
    const code = typeof error.code === 'string' ? error.code : undefined;
    return kotoError(
      'KOTO_ERR_UPSTREAM',
      { provider: this.target.provider, status: 101, detail: `: ${scrub(detail, this.target.secrets)}` },
      { details: { provider: this.target.provider, retryable: true, ...(code ? { upstreamCode: code } : {}) } },
    );
  }

  #error(detail: string): KotoError {
    return kotoError(
      'KOTO_ERR_BAD_RESPONSE',
      { provider: this.target.provider, detail: scrub(detail, this.target.secrets) },
      { details: { provider: this.target.provider, retryable: true } },
    );
  }
}

function describeUpstream(error: Record<string, unknown>): string {
  const message =
    typeof error.message === 'string' && error.message.trim() ? error.message.trim().replace(/\s+/g, ' ').slice(0, 300) : 'no detail';
  const code = typeof error.code === 'string' && error.code ? ` (${error.code})` : '';
  return `${message}${code}`;
}
