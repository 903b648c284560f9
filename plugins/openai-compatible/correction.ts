import { kotoError, z, type CorrectionRequest, type ProviderUsage } from 'koto-voice';
import { badResponse, isRecord, parseJson, readBody, send, streamError, usageOf, type WireTarget } from './client.ts';
import { buildPrompts } from './prompts.ts';
import { eventJson, isEventStream, sseEvents } from './sse.ts';
import { stripThink, visibleText } from './think.ts';

export type CompletionProtocol = 'chat' | 'responses';

/** One correction call, protocol-neutral. */
export interface CompletionParams {
  readonly protocol: CompletionProtocol;
  readonly model: string;
  readonly system: string;
  readonly user: string;
  readonly stream: boolean;
  readonly temperature?: number | undefined;
  readonly topP?: number | undefined;
  readonly maxTokens?: number | undefined;
  /** Chat only: `max_tokens` (older servers) or `max_completion_tokens`. Responses always use `max_output_tokens`. */
  readonly maxTokensParam?: 'max_tokens' | 'max_completion_tokens' | undefined;
  readonly reasoningEffort?: string | undefined;
}

export interface CompletionResult {
  /** The answer without a leading `<think>` block; `null` for "no correction". */
  readonly text: string | null;
  readonly model: string;
  /** Why there is no text, when there is none (`length`, `content_filter`, `refusal`, `think`, `empty`). */
  readonly reason?: string | undefined;
  /** Tokens in and out, from the answer's `usage`. */
  readonly usage?: ProviderUsage | undefined;
}

export interface CompleteCallbacks {
  readonly signal: AbortSignal;
  /** The visible answer so far (think block hidden), while it streams. */
  readonly onDelta?: ((text: string) => void) | undefined;
}

/**
 * The OpenAI wire fields users write in the `correction` section; they reach a correction
 * provider as `request.providerOptions` (the kernel validated them already; unknown keys,
 * meant for another provider, are ignored).
 */
export const correctionOptionsSchema = z.object({
  protocol: z.enum(['chat', 'responses']).default('chat'),
  topP: z.number().min(0).max(1).optional(),
  maxTokensParam: z.enum(['max_tokens', 'max_completion_tokens']).default('max_completion_tokens'),
  reasoningEffort: z.enum(['none', 'minimal', 'low', 'medium', 'high']).optional(),
});
export type CorrectionOptions = z.output<typeof correctionOptionsSchema>;

/** `request.providerOptions` read as the OpenAI wire fields; a bad value names its `correction` key. */
export function correctionOptions(request: Pick<CorrectionRequest, 'providerOptions' | 'provider'>): CorrectionOptions {
  const checked = correctionOptionsSchema.safeParse(request.providerOptions ?? {});
  if (checked.success) return checked.data;
  const issue = checked.error.issues[0];
  throw kotoError('KOTO_ERR_CONFIG_INVALID', {
    file: `provider "${request.provider.name}"`,
    detail: `correction.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
  });
}

/** The parameters for a kernel `CorrectionRequest` (prompts filled, settings mapped). */
export function completionParams(request: CorrectionRequest, model: string): CompletionParams {
  const { settings } = request;
  const wire = correctionOptions(request);
  const prompts = buildPrompts(
    { asrText: request.text, dictionary: request.dictionary, interimHistory: request.interimHistory },
    { system: request.systemPrompt, user: request.userPrompt },
  );
  return {
    protocol: wire.protocol,
    model,
    system: prompts.system,
    user: prompts.user,
    stream: settings.stream,
    temperature: settings.temperature,
    topP: wire.topP,
    maxTokens: settings.maxTokens,
    maxTokensParam: wire.maxTokensParam,
    reasoningEffort: wire.reasoningEffort,
  };
}

function defined(entries: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined));
}

/** `CreateChatCompletionRequest` body. */
export function chatBody(params: CompletionParams): Record<string, unknown> {
  return defined({
    model: params.model,
    messages: [
      { role: 'system', content: params.system },
      { role: 'user', content: params.user },
    ],
    stream: params.stream ? true : undefined,
    // The token counts come in a last chunk only when asked for (they price the call).
    stream_options: params.stream ? { include_usage: true } : undefined,
    temperature: params.temperature,
    top_p: params.topP,
    [params.maxTokensParam ?? 'max_completion_tokens']: params.maxTokens,
    reasoning_effort: params.reasoningEffort,
  });
}

/** The Responses API refuses `max_output_tokens` below 16. */
const MIN_OUTPUT_TOKENS = 16;

/** `CreateResponse` body. Dictations are not stored upstream (`store: false`). */
export function responsesBody(params: CompletionParams): Record<string, unknown> {
  return defined({
    model: params.model,
    instructions: params.system,
    input: params.user,
    stream: params.stream ? true : undefined,
    store: false,
    temperature: params.temperature,
    top_p: params.topP,
    max_output_tokens: params.maxTokens === undefined ? undefined : Math.max(MIN_OUTPUT_TOKENS, params.maxTokens),
    reasoning: params.reasoningEffort === undefined ? undefined : { effort: params.reasoningEffort },
  });
}

/** What a protocol's answer yielded before the think block is stripped. */
interface RawAnswer {
  readonly text: string;
  /** Set when the answer must not be used (truncated, filtered, refused). */
  readonly unusable?: string | undefined;
  readonly usage?: ProviderUsage | undefined;
}

function finish(params: CompletionParams, answer: RawAnswer): CompletionResult {
  const usage = answer.usage ? { usage: answer.usage } : {};
  if (answer.unusable) return { text: null, model: params.model, reason: answer.unusable, ...usage };
  const text = stripThink(answer.text);
  if (text !== null) return { text, model: params.model, ...usage };
  return { text: null, model: params.model, reason: /^\s*<think>/i.test(answer.text) ? 'think' : 'empty', ...usage };
}

// Finish reasons after which the text is not the whole correction: delivering it would lose words.
const UNUSABLE_FINISH = new Set(['length', 'content_filter']);

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part) => (isRecord(part) && typeof part.text === 'string' ? part.text : '')).join('');
  }
  return '';
}

function chatJson(target: WireTarget, value: unknown): RawAnswer {
  if (!isRecord(value) || !Array.isArray(value.choices)) throw badResponse(target, 'a chat completion without "choices"');
  const choice = value.choices[0];
  const usage = usageOf(value.usage);
  if (!isRecord(choice)) return { text: '', usage };
  const message = isRecord(choice.message) ? choice.message : {};
  if (typeof message.refusal === 'string' && message.refusal !== '') return { text: '', unusable: 'refusal', usage };
  const reason = typeof choice.finish_reason === 'string' ? choice.finish_reason : undefined;
  return { text: contentText(message.content), unusable: reason && UNUSABLE_FINISH.has(reason) ? reason : undefined, usage };
}

/** The assistant's text of a `Response` object (its `message` output items). */
export function responseOutputText(response: Record<string, unknown>): { text: string; refusal: boolean } {
  let text = '';
  let refusal = false;
  if (Array.isArray(response.output)) {
    for (const item of response.output) {
      if (!isRecord(item) || item.type !== 'message' || !Array.isArray(item.content)) continue;
      for (const part of item.content) {
        if (!isRecord(part)) continue;
        if (part.type === 'output_text' && typeof part.text === 'string') text += part.text;
        if (part.type === 'refusal') refusal = true;
      }
    }
  } else if (typeof response.output_text === 'string') {
    text = response.output_text;
  }
  return { text, refusal };
}

function responseAnswer(target: WireTarget, response: Record<string, unknown>, streamed: string | undefined): RawAnswer {
  const status = response.status;
  if (status === 'failed') throw streamError(target, isRecord(response.error) ? response.error : { message: 'the response failed' });
  const { text, refusal } = responseOutputText(response);
  const usage = usageOf(response.usage);
  if (refusal) return { text: '', unusable: 'refusal', usage };
  if (status === 'incomplete') {
    const details = isRecord(response.incomplete_details) ? response.incomplete_details : {};
    return { text: '', unusable: typeof details.reason === 'string' ? details.reason : 'incomplete', usage };
  }
  return { text: text !== '' || streamed === undefined ? text : streamed, usage };
}

async function readChatStream(
  target: WireTarget,
  response: Parameters<typeof sseEvents>[1],
  callbacks: CompleteCallbacks,
  what: string,
): Promise<RawAnswer> {
  let accumulated = '';
  let shown = '';
  let finishReason: string | undefined;
  let done = false;
  let usage: ProviderUsage | undefined;
  for await (const event of sseEvents(target, response, callbacks.signal, what)) {
    if (event.data.trim() === '[DONE]') {
      done = true;
      break;
    }
    const value = eventJson(target, event);
    if ('error' in value) throw streamError(target, value);
    usage = usageOf(value.usage) ?? usage;
    const choice = Array.isArray(value.choices) ? value.choices[0] : undefined;
    if (!isRecord(choice)) continue;
    const delta = isRecord(choice.delta) ? choice.delta : {};
    if (typeof delta.refusal === 'string' && delta.refusal !== '') finishReason = 'refusal';
    if (typeof delta.content === 'string' && delta.content !== '') {
      accumulated += delta.content;
      const visible = visibleText(accumulated);
      if (visible !== shown) {
        shown = visible;
        callbacks.onDelta?.(visible);
      }
    }
    if (typeof choice.finish_reason === 'string') finishReason = finishReason === 'refusal' ? 'refusal' : choice.finish_reason;
  }
  if (!done && finishReason === undefined) throw badResponse(target, 'the chat completion stream ended before [DONE]', true);
  return {
    text: accumulated,
    unusable: finishReason && (UNUSABLE_FINISH.has(finishReason) || finishReason === 'refusal') ? finishReason : undefined,
    usage,
  };
}

async function readResponsesStream(
  target: WireTarget,
  response: Parameters<typeof sseEvents>[1],
  callbacks: CompleteCallbacks,
  what: string,
): Promise<RawAnswer> {
  let accumulated = '';
  let shown = '';
  for await (const event of sseEvents(target, response, callbacks.signal, what)) {
    if (event.data.trim() === '[DONE]') break;
    const value = eventJson(target, event);
    const type = typeof value.type === 'string' ? value.type : event.event;
    switch (type) {
      case 'response.output_text.delta': {
        if (typeof value.delta !== 'string') throw badResponse(target, 'a response.output_text.delta event without a "delta" string');
        accumulated += value.delta;
        const visible = visibleText(accumulated);
        if (visible !== shown) {
          shown = visible;
          callbacks.onDelta?.(visible);
        }
        break;
      }
      case 'response.completed':
      case 'response.incomplete':
      case 'response.failed': {
        if (!isRecord(value.response)) throw badResponse(target, `a ${type} event without its response`);
        return responseAnswer(target, value.response, accumulated);
      }
      case 'response.refusal.delta':
        return { text: '', unusable: 'refusal' };
      case 'error':
        throw streamError(target, value);
      default:
        if ('error' in value && isRecord(value.error)) throw streamError(target, value);
    }
  }
  throw badResponse(target, 'the response stream ended before response.completed', true);
}

/**
 * One correction over the chosen protocol: `POST /chat/completions` or `POST /responses`,
 * JSON or SSE. A leading `<think>` block is stripped; an unterminated one, an empty answer,
 * or one cut short (`length`, content filter, refusal, incomplete) yields `text: null`.
 */
export async function complete(target: WireTarget, params: CompletionParams, callbacks: CompleteCallbacks): Promise<CompletionResult> {
  const chat = params.protocol === 'chat';
  const what = 'the correction';
  const body = JSON.stringify(chat ? chatBody(params) : responsesBody(params));
  const response = await send(target, {
    operation: chat ? 'chat' : 'responses',
    model: params.model,
    method: 'POST',
    body,
    contentType: 'application/json',
    accept: params.stream ? 'text/event-stream, application/json' : 'application/json',
    signal: callbacks.signal,
    what,
  });
  if (isEventStream(response.contentType)) {
    const answer = chat
      ? await readChatStream(target, response, callbacks, what)
      : await readResponsesStream(target, response, callbacks, what);
    return finish(params, answer);
  }
  const value = parseJson(target, (await readBody(target, response, callbacks.signal, what)).toString('utf8'));
  if (chat) return finish(params, chatJson(target, value));
  if (!isRecord(value)) throw badResponse(target, 'a response that is not a JSON object');
  return finish(params, responseAnswer(target, value, undefined));
}
