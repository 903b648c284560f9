/**
 * PUBLIC ENTRY POINT: the OpenAI wire protocol, independent of where the endpoint lives and how
 * it authenticates. Other provider plugins that speak the same protocol (Azure AI Foundry /
 * Azure OpenAI) import from here, give a {@link WireTarget} with their own URL builder and
 * headers function, and reuse transcription, correction, SSE parsing, error mapping and
 * pre-warming unchanged. Everything exported here is kept stable; the rest of this folder is
 * the plugin's private implementation.
 *
 * @example
 * ```ts
 * import { transcribe, transcriptionParams, type WireTarget } from '../openai-compatible/wire.ts';
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

export {
  badResponse,
  baseUrlBuilder,
  bearerHeaders,
  displayUrl,
  httpError,
  joinUrl,
  MAX_RESPONSE_BYTES,
  OPERATION_PATHS,
  readBody,
  retryAfterSeconds,
  scrub,
  secretValues,
  send,
  streamError,
  sumUsage,
  transportError,
  usageOf,
  USER_AGENT,
  type SendOptions,
  type SentResponse,
  type WireOperation,
  type WireTarget,
} from './client.ts';
export { encodeMultipart, type EncodedMultipart, type MultipartFile, type MultipartValue } from './multipart.ts';
export { eventJson, isEventStream, sseEvents, type EventSourceMessage } from './sse.ts';
export {
  foldVocabulary,
  transcribe,
  transcriptionForm,
  transcriptionParams,
  transcriptionText,
  type TranscribeCallbacks,
  type TranscriptionParams,
  type TranscriptionPolicy,
  type TranscriptionResult,
} from './asr.ts';
export {
  chatBody,
  complete,
  completionParams,
  correctionOptions,
  correctionOptionsSchema,
  responseOutputText,
  responsesBody,
  type CompleteCallbacks,
  type CompletionParams,
  type CompletionProtocol,
  type CompletionResult,
  type CorrectionOptions,
} from './correction.ts';
export { buildPrompts, DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_PROMPT, fillTemplate, type CorrectionPrompts, type PromptValues } from './prompts.ts';
export { stripThink, visibleText } from './think.ts';
export { isStreamingAsrModel, sendsKeywords, MIN_MAX_UPLOAD_BYTES } from './options.ts';
export {
  DEFAULT_MAX_UPLOAD_BYTES,
  describePlan,
  stitch,
  transcribeWithinLimit,
  transcriptionRequestBytes,
  type LimitedTranscriptionResult,
  type UploadLimit,
} from './upload.ts';
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
export * from './realtime.ts';
export { installRealtime, type RealtimePlan, type RealtimeStreams, type RealtimeStreamsOptions } from './realtime-plugin.ts';
