import {
  describeError,
  type AsrProviderV1,
  type CorrectionProviderV1,
  type ProbeRequest,
  type ProbeResult,
  type ProviderRef,
  type SessionContext,
} from 'koto-voice';
import { transcriptionParams } from './asr.ts';
import { displayUrl, send, type WireTarget } from './client.ts';
import { complete, completionParams } from './correction.ts';
import { isStreamingAsrModel, sendsKeywords, type ProviderOptions } from './options.ts';
import type { RealtimeStreams } from './realtime-plugin.ts';
import type { OpenAiApi } from './target.ts';
import { describePlan, transcribeWithinLimit } from './upload.ts';

type TargetFor = (ref: ProviderRef<ProviderOptions>, session: Pick<SessionContext, 'config'>) => WireTarget;

/** A failing interim listener (a UI) must not cost the dictation: report it once, go on. */
export function guarded(api: OpenAiApi, label: string, listener: (text: string) => void): (text: string) => void {
  return (text) => {
    try {
      listener(text);
    } catch (err) {
      api.log.warnOnce(`listener:${label}`, `a ${label} listener threw (ignored; the dictation goes on): ${describeError(err)}`);
    }
  };
}

/** `koto doctor`: an authenticated GET /models proves the URL, the TLS chain and the key in one request. */
function probe(api: OpenAiApi, targetFor: TargetFor): (request: ProbeRequest<ProviderOptions>) => Promise<ProbeResult> {
  return async ({ provider, signal }) => {
    const target = targetFor(provider, { config: api.config() });
    const res = await send(target, { operation: 'models', model: undefined, method: 'GET', signal, what: 'the check' });
    await res.body.dump();
    return { ok: true, detail: `${displayUrl(res.url)} answered ${res.status}: reachable, credentials accepted` };
  };
}

/** Transcription over `/audio/transcriptions` (or the realtime stream of a live recording). */
export function asrProvider(api: OpenAiApi, targetFor: TargetFor, realtime: RealtimeStreams): AsrProviderV1<ProviderOptions> {
  return {
    specificationVersion: 'v1',
    async transcribe(request) {
      const onInterim = guarded(api, 'transcription interim', request.onInterim);
      // The streamed transcript when this recording was streamed; undefined (logged) → upload it.
      const streamed = await realtime.finish(request, onInterim);
      if (streamed) return streamed;
      const ref = request.provider;
      const options = ref.options;
      const target = targetFor(ref, request.session);
      const model = request.model ?? options.asrModel;
      const params = transcriptionParams(request, {
        model,
        streaming: isStreamingAsrModel(options, model),
        keywords: sendsKeywords(options, model),
      });
      const result = await transcribeWithinLimit(
        target,
        params,
        request.audio,
        { signal: request.signal, onInterim },
        {
          maxBytes: options.maxUploadBytes,
          option: `providers.${ref.name}.maxUploadBytes`,
          onPlan: (plan) => {
            if (plan.how !== 'whole') api.log.info(`provider "${ref.name}": ${describePlan(plan, options.maxUploadBytes)}`);
          },
        },
      );
      const warnings =
        result.how === 'split'
          ? [`the recording was over provider "${ref.name}"'s upload limit: transcribed in ${result.parts} parts cut at pauses`]
          : undefined;
      return {
        text: result.text,
        model: result.model,
        language: result.language,
        durationSec: result.durationSec,
        warnings,
        usage: result.usage,
      };
    },
    probe: probe(api, targetFor),
  };
}

/** Correction over `/chat/completions` or `/responses`. */
export function correctionProvider(api: OpenAiApi, targetFor: TargetFor): CorrectionProviderV1<ProviderOptions> {
  return {
    specificationVersion: 'v1',
    async correct(request) {
      const target = targetFor(request.provider, request.session);
      const model = request.model ?? request.provider.options.correctionModel;
      const result = await complete(target, completionParams(request, model), {
        signal: request.signal,
        onDelta: guarded(api, 'correction delta', request.onDelta),
      });
      if (result.text === null) api.log.info(`provider "${request.provider.name}" gave no usable correction (${result.reason ?? 'empty'})`);
      return { text: result.text, model: result.model, reason: result.reason, usage: result.usage };
    },
    probe: probe(api, targetFor),
  };
}
