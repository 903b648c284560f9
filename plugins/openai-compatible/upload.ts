import { fitUpload, formatBytes, kotoError, type AudioData, type ProviderUsage, type UploadPlan } from 'koto-voice';
import { transcribe, transcriptionForm, type TranscribeCallbacks, type TranscriptionParams, type TranscriptionResult } from './asr.ts';
import { sumUsage, type WireTarget } from './client.ts';

/**
 * Transcription of a recording of any size within a provider's upload limit. The limit is the
 * wire's business (what one `POST /audio/transcriptions` may weigh, multipart framing included);
 * how audio is made smaller is the kernel's (`fitUpload`: FLAC through ffmpeg, or parts cut at
 * pauses), reached through the public API like any plugin would.
 */

/** OpenAI's limit on a transcription request ("Maximum content size limit (26214400) exceeded"). */
export const DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024;

/** Characters of the previous part's transcript given as `prompt` to the next (continuity across a cut). */
const CONTEXT_CHARS = 300;
/** Request bytes kept free for that context (UTF-8: up to 4 bytes a character) and a longer part filename. */
const RESERVED_BYTES = CONTEXT_CHARS * 4 + 256;

export interface UploadLimit {
  /** Largest request body (multipart framing and fields included). */
  readonly maxBytes: number;
  /** The option that sets it, named in the refusal (`providers.main.maxUploadBytes`). */
  readonly option?: string | undefined;
  /** Told how the recording will go up, before the first byte is sent (for a log line). */
  readonly onPlan?: ((plan: UploadPlan) => void) | undefined;
}

export interface LimitedTranscriptionResult extends TranscriptionResult {
  readonly how: UploadPlan['how'];
  readonly parts: number;
}

/** What a kernel retry may reuse: the plan (no second ffmpeg run) and the parts already transcribed. */
interface Progress {
  readonly key: string;
  readonly plan: UploadPlan;
  readonly texts: string[];
  readonly seconds: (number | undefined)[];
  readonly usage: (ProviderUsage | undefined)[];
  language: string | undefined;
}

// Keyed by the recording's bytes: the kernel retries a stage with the same AudioData, so a part
// that failed is sent again and the ones before it are not.
const progressOf = new WeakMap<Uint8Array, Progress>();

/** Bytes of the transcription request `params` makes, computed without building it. */
export function transcriptionRequestBytes(params: TranscriptionParams): number {
  const frame = transcriptionForm({ ...params, file: { ...params.file, data: new Uint8Array(0) } }).body.length;
  return frame + params.file.data.length;
}

/**
 * Transcribes `audio` with requests of at most `limit.maxBytes`: as one request when it fits,
 * else as one FLAC, else as consecutive parts sent one after the other over the same client and
 * joined in order. Refuses before sending anything when it cannot be made to fit.
 */
export async function transcribeWithinLimit(
  target: WireTarget,
  params: TranscriptionParams,
  audio: AudioData,
  callbacks: TranscribeCallbacks,
  limit: UploadLimit,
): Promise<LimitedTranscriptionResult> {
  // What a request weighs besides the audio: the multipart framing and the other fields.
  const frame = transcriptionRequestBytes(params) - params.file.data.length;
  const key = JSON.stringify([target.provider, params.model, params.language, params.prompt, params.keywords, limit.maxBytes]);
  let progress = progressOf.get(audio.data);
  if (progress?.key !== key) {
    const plan = await fitUpload(audio, {
      maxBytes: limit.maxBytes - frame - RESERVED_BYTES,
      limitBytes: limit.maxBytes,
      limitOption: limit.option,
      provider: target.provider,
      signal: callbacks.signal,
    });
    progress = { key, plan, texts: [], seconds: [], usage: [], language: undefined };
    progressOf.set(audio.data, progress);
  }
  const { plan } = progress;
  limit.onPlan?.(plan);

  for (const part of plan.parts.slice(progress.texts.length)) {
    const previous = stitch(progress.texts);
    const partParams: TranscriptionParams = {
      ...params,
      file: { data: part.data(), filename: part.filename, contentType: part.mimeType },
      prompt: plan.parts.length > 1 ? withContext(params.prompt, previous) : params.prompt,
    };
    const bytes = transcriptionRequestBytes(partParams);
    // The plan guarantees this; checked anyway, since a request over the limit is never sent.
    if (bytes > limit.maxBytes) {
      throw kotoError('KOTO_ERR_INTERNAL', {
        detail: `an upload part of ${bytes} bytes exceeds the ${limit.maxBytes}-byte limit of provider "${target.provider}"`,
      });
    }
    const onInterim = callbacks.onInterim;
    const result = await transcribe(target, partParams, {
      signal: callbacks.signal,
      onInterim: onInterim && ((text: string) => onInterim(stitch([previous, text]))),
    });
    progress.texts.push(result.text);
    // A part's own length stands in for a server that reports none, so the sum stays whole.
    progress.seconds.push(result.durationSec ?? (plan.how === 'whole' ? undefined : part.durationSec));
    progress.usage.push(result.usage);
    progress.language ??= result.language;
  }
  progressOf.delete(audio.data);
  const seconds = progress.seconds.every((s) => s !== undefined) ? progress.seconds.reduce<number>((a, s) => a + (s ?? 0), 0) : undefined;
  return {
    text: stitch(progress.texts),
    model: params.model,
    language: progress.language ?? params.language,
    durationSec: seconds,
    usage: sumUsage(progress.usage),
    how: plan.how,
    parts: plan.parts.length,
  };
}

// Scripts written without spaces between words: parts join without one.
const UNSPACED = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/u;

/** Transcripts of consecutive parts as one text. */
export function stitch(texts: readonly string[]): string {
  let out = '';
  for (const raw of texts) {
    const text = raw.trim();
    if (!text) continue;
    if (!out) {
      out = text;
      continue;
    }
    const joiner = UNSPACED.test(out.at(-1)!) && UNSPACED.test(text[0]!) ? '' : ' ';
    out += joiner + text;
  }
  return out;
}

/** The configured prompt after the last words before the cut (Whisper reads a prompt's end most). */
function withContext(prompt: string | undefined, previous: string): string | undefined {
  if (!previous) return prompt;
  let tail = previous.length > CONTEXT_CHARS ? previous.slice(-CONTEXT_CHARS) : previous;
  if (tail.length < previous.length) tail = tail.replace(/^\S*\s+/, '');
  return prompt?.trim() ? `${tail} ${prompt.trim()}` : tail;
}

/** One line for the log: how a recording over the limit goes up. */
export function describePlan(plan: UploadPlan, maxBytes: number): string {
  const size = `${formatBytes(plan.originalBytes)} is over the ${formatBytes(maxBytes)} upload limit`;
  if (plan.how === 'whole') return `${formatBytes(plan.originalBytes)} fits the upload limit`;
  if (plan.how === 'compressed') return `${size}: sent as FLAC (${formatBytes(plan.parts[0]?.bytes ?? 0)})`;
  const largest = Math.max(...plan.parts.map((p) => p.bytes));
  return `${size}: sent in ${plan.parts.length} parts cut at pauses (largest ${formatBytes(largest)})${plan.note ? `; ${plan.note}` : ''}`;
}
