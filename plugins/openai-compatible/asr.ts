import type { AsrRequest, ProviderUsage } from 'koto-voice';
import { badResponse, isRecord, parseJson, readBody, send, streamError, usageOf, type WireTarget } from './client.ts';
import { encodeMultipart, type MultipartFile } from './multipart.ts';
import { eventJson, isEventStream, sseEvents } from './sse.ts';

/** One `POST /audio/transcriptions` (fields of `CreateTranscriptionRequest`). */
export interface TranscriptionParams {
  readonly model: string;
  readonly file: MultipartFile;
  readonly language?: string | undefined;
  readonly prompt?: string | undefined;
  readonly temperature?: number | undefined;
  /** Sent as repeated `keywords[]` fields. */
  readonly keywords?: readonly string[] | undefined;
  /** Ask for SSE (`transcript.text.delta` / `transcript.text.done`). */
  readonly stream: boolean;
  /** `json` (default) or `text`; both answers are understood either way. */
  readonly responseFormat?: 'json' | 'text' | undefined;
}

export interface TranscriptionResult {
  readonly text: string;
  readonly model: string;
  readonly language?: string | undefined;
  readonly durationSec?: number | undefined;
  /** The answer's `usage` (tokens or billed seconds), when it has one. */
  readonly usage?: ProviderUsage | undefined;
}

export interface TranscribeCallbacks {
  readonly signal: AbortSignal;
  /** Accumulated text so far, while an SSE transcription streams. */
  readonly onInterim?: ((text: string) => void) | undefined;
}

/** Longest vocabulary folded into `prompt` (Whisper reads about the last 224 tokens of a prompt). */
const MAX_VOCABULARY_CHARS = 800;

/** `prompt` with the dictionary appended as `Vocabulary: a, b, c` (as many terms as fit). */
export function foldVocabulary(prompt: string | undefined, terms: readonly string[]): string | undefined {
  const kept: string[] = [];
  let length = 0;
  for (const term of terms) {
    const cost = term.length + 2;
    if (length + cost > MAX_VOCABULARY_CHARS) break;
    kept.push(term);
    length += cost;
  }
  const vocabulary = kept.length > 0 ? `Vocabulary: ${kept.join(', ')}.` : undefined;
  if (!vocabulary) return prompt;
  return prompt?.trim() ? `${prompt.trim()} ${vocabulary}` : vocabulary;
}

/** How one instance treats one model: decided by the plugin from its options. */
export interface TranscriptionPolicy {
  readonly model: string;
  /** The model accepts `stream: true` (and the config asks for streaming). */
  readonly streaming: boolean;
  /** Dictionary terms go out as `keywords`; otherwise they are folded into `prompt`. */
  readonly keywords: boolean;
}

/** The request parameters for a kernel `AsrRequest`. */
export function transcriptionParams(request: AsrRequest, policy: TranscriptionPolicy): TranscriptionParams {
  const terms = request.dictionary.filter((t) => t.trim() !== '');
  const useKeywords = policy.keywords && terms.length > 0;
  return {
    model: policy.model,
    file: { data: request.audio.data, filename: request.audio.filename, contentType: request.audio.mimeType },
    language: request.language,
    prompt: useKeywords ? request.prompt : foldVocabulary(request.prompt, terms),
    temperature: request.temperature,
    keywords: useKeywords ? terms : undefined,
    stream: policy.streaming && request.stream,
  };
}

/** The multipart body of a transcription request. */
export function transcriptionForm(params: TranscriptionParams): { body: Buffer; contentType: string } {
  return encodeMultipart([
    ['model', params.model],
    ['language', params.language],
    ['prompt', params.prompt],
    ['keywords', params.keywords],
    ['response_format', params.responseFormat ?? 'json'],
    ['temperature', params.temperature],
    ['stream', params.stream ? true : undefined],
    ['file', params.file],
  ]);
}

/** Text from a non-streaming answer: `{"text": …}` JSON, or plain text. */
export function transcriptionText(
  target: WireTarget,
  contentType: string,
  body: string,
): { text: string; language?: string; durationSec?: number; usage?: ProviderUsage } {
  const looksJson = contentType.includes('json') || /^\s*[{"]/.test(body);
  if (!looksJson) return { text: body.trim() };
  let value: unknown;
  try {
    value = parseJson(target, body);
  } catch (err) {
    // A text/plain answer that merely starts with a quote or brace is still text.
    if (!contentType.includes('json')) return { text: body.trim() };
    throw err;
  }
  if (typeof value === 'string') return { text: value.trim() };
  if (isRecord(value) && typeof value.text === 'string') {
    const usage = isRecord(value.usage) ? value.usage : undefined;
    const seconds =
      typeof value.duration === 'number'
        ? value.duration
        : usage?.type === 'duration' && typeof usage.seconds === 'number'
          ? usage.seconds
          : undefined;
    const billed = usageOf(usage);
    return {
      text: value.text.trim(),
      ...(typeof value.language === 'string' ? { language: value.language } : {}),
      ...(seconds !== undefined ? { durationSec: seconds } : {}),
      ...(billed ? { usage: billed } : {}),
    };
  }
  throw badResponse(target, 'a transcription answer without a "text" field');
}

/**
 * `POST /audio/transcriptions`: multipart upload, then either SSE (`transcript.text.delta`
 * events accumulated into `onInterim`, the final text from `transcript.text.done`) or one
 * JSON / plain-text answer.
 */
export async function transcribe(
  target: WireTarget,
  params: TranscriptionParams,
  callbacks: TranscribeCallbacks,
): Promise<TranscriptionResult> {
  const { signal } = callbacks;
  const form = transcriptionForm(params);
  const what = 'the transcription';
  const response = await send(target, {
    operation: 'transcriptions',
    model: params.model,
    method: 'POST',
    body: form.body,
    contentType: form.contentType,
    accept: params.stream ? 'text/event-stream, application/json' : 'application/json, text/plain',
    signal,
    upload: true,
    what,
  });

  if (!isEventStream(response.contentType)) {
    const body = (await readBody(target, response, signal, what)).toString('utf8');
    const parsed = transcriptionText(target, response.contentType, body);
    return { ...parsed, model: params.model, language: parsed.language ?? params.language };
  }

  let accumulated = '';
  let final: string | undefined;
  let usage: ProviderUsage | undefined;
  for await (const event of sseEvents(target, response, signal, what)) {
    if (event.data.trim() === '[DONE]') break;
    const value = eventJson(target, event);
    const type = typeof value.type === 'string' ? value.type : event.event;
    if (type === 'transcript.text.delta') {
      if (typeof value.delta !== 'string') throw badResponse(target, 'a transcript.text.delta event without a "delta" string');
      accumulated += value.delta;
      callbacks.onInterim?.(accumulated);
    } else if (type === 'transcript.text.done') {
      final = typeof value.text === 'string' ? value.text : accumulated;
      usage = usageOf(value.usage);
    } else if (type === 'error' || 'error' in value) {
      throw streamError(target, value);
    }
    // Other events (transcript.text.segment, …) carry nothing this plugin needs.
  }
  if (final === undefined) {
    throw badResponse(target, 'the transcription stream ended before its transcript.text.done event', true);
  }
  return { text: final.trim(), model: params.model, language: params.language, ...(usage ? { usage } : {}) };
}
