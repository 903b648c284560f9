/**
 * PUBLIC ENTRY POINT `koto-voice/openai-wire`: the OpenAI wire protocol, independent of where
 * the endpoint lives and how it authenticates. Another provider plugin that speaks the same
 * protocol (Azure AI Foundry / Azure OpenAI does) gives a {@link WireTarget} with its own URL
 * builder and headers function and reuses transcription, completion, SSE reading, error mapping,
 * pre-warming and the realtime session unchanged.
 *
 * Every name exported here is deliberate, documented in docs/plugins.md ("The OpenAI wire
 * package") and follows semver; test/third-party/openai-wire-exports.test.ts fails on a name
 * added or dropped without the docs. Everything else in this folder is the plugin's private
 * implementation: never re-export a module wholesale from here.
 *
 * @example
 * ```ts
 * import { transcribe, transcriptionParams, type WireTarget } from 'koto-voice/openai-wire';
 * const target: WireTarget = {
 *   provider: ref.name,
 *   http: api.http,
 *   url: (op, model) => new URL(`${endpoint}/openai/deployments/${model}${PATHS[op]}?api-version=${version}`),
 *   headers: async () => ({ 'api-key': key }),
 *   secrets: [key],
 * };
 * const result = await transcribe(target, transcriptionParams(request, { model, streaming: true, keywords: false }), request);
 * ```
 *
 * @module
 */

import type { KotoHttp, ProviderRef, SessionContext } from 'koto-voice';
import { USER_AGENT, type WireTarget } from './client.ts';

// The target, one request, and the mapping of failures to catalogue errors.
export {
  httpError,
  retryAfterSeconds,
  send,
  transportError,
  type SendOptions,
  type SentResponse,
  type WireOperation,
  type WireTarget,
} from './client.ts';
// Request and response bodies.
export { encodeMultipart, type MultipartFile, type MultipartValue } from './multipart.ts';
export { eventJson, sseEvents } from './sse.ts';
// Transcription (one upload, or a recording over the upload limit in parts).
export {
  transcribe,
  transcriptionParams,
  type TranscribeCallbacks,
  type TranscriptionParams,
  type TranscriptionPolicy,
  type TranscriptionResult,
} from './asr.ts';
export { describePlan, transcribeWithinLimit, type LimitedTranscriptionResult, type UploadLimit } from './upload.ts';
export { isStreamingAsrModel, MIN_MAX_UPLOAD_BYTES, sendsKeywords } from './options.ts';
// Completion (correction) over chat completions or responses.
export {
  complete,
  completionParams,
  correctionOptionsSchema,
  type CompleteCallbacks,
  type CompletionParams,
  type CompletionResult,
  type CorrectionOptions,
} from './correction.ts';
// Realtime transcription over the WebSocket, and its wiring into a plugin's hooks.
export {
  RealtimeTranscription,
  realtimeSendsKeywords,
  transcriptionSessionUpdate,
  type RealtimeOptions,
  type RealtimeSessionParams,
  type RealtimeTarget,
  type SessionUpdateEvent,
} from './realtime.ts';
export { realtimeSettingsSchema, type RealtimeSettings } from './realtime-options.ts';
export { installRealtime, type RealtimePlan, type RealtimeStreams, type RealtimeStreamsOptions } from './realtime-plugin.ts';
// The endpoint URL rules of a provider's options (https, plain http only on loopback).
export { envUrlError, isInsecureRemote, urlProblem, type UrlRules } from './url.ts';

/**
 * Starts warming the target's connection with `GET {models}` through the kernel's shared
 * client and returns at once with the pending result (never rejects). Callers must not await
 * it on a session's critical path; `origin` is returned for de-duplication.
 */
export function prewarm(target: WireTarget, http: Pick<KotoHttp, 'prewarm'>): { origin: string; done: Promise<boolean> } {
  const url = target.url('models', undefined);
  const done = Promise.resolve()
    .then(() => target.headers('models'))
    .then((headers) => http.prewarm(url.origin, `${url.pathname}${url.search}`, { 'user-agent': USER_AGENT, ...headers }))
    .catch(() => false);
  return { origin: url.origin, done };
}

/**
 * Pre-warms, once per origin, every provider of the session that the plugin `name` serves:
 * the sessionStart tap of a provider plugin. Fired, never awaited; a provider whose target
 * cannot be built is skipped (its request reports the problem properly).
 */
export function prewarmSession(
  session: SessionContext,
  name: string,
  http: Pick<KotoHttp, 'prewarm'>,
  targetOf: (ref: ProviderRef) => WireTarget,
): void {
  const seen = new Set<string>();
  for (const ref of [session.providers.asr, session.providers.correction, ...(session.providers.hedges ?? [])]) {
    if (!ref || ref.use !== name) continue;
    let target: WireTarget;
    try {
      target = targetOf(ref);
    } catch {
      continue;
    }
    const origin = target.url('models', undefined).origin;
    if (seen.has(origin)) continue;
    seen.add(origin);
    void prewarm(target, http).done;
  }
}
