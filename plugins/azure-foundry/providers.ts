import {
  describeError,
  type AsrProviderV1,
  type CorrectionProviderV1,
  type PluginApi,
  type ProbeRequest,
  type ProbeResult,
} from 'koto-voice';
import {
  complete,
  completionParams,
  describePlan,
  send,
  sendsKeywords,
  transcribeWithinLimit,
  transcriptionParams,
  type RealtimeStreams,
  type WireOperation,
} from 'koto-voice/openai-wire';
import type { AzureCalls } from './calls.ts';
import { resolveEndpoint, streamsTranscription } from './endpoint.ts';
import { explain, isContentFilter } from './explain.ts';
import type { ProviderOptions } from './options.ts';

type AzureApi = PluginApi<ProviderOptions>;

/** Transcription by the instance's `asr` deployment (or the realtime stream of a live recording). */
export function asrProvider(
  api: AzureApi,
  { call, deploymentFor, targetFor }: AzureCalls,
  realtime: RealtimeStreams,
): AsrProviderV1<ProviderOptions> {
  const warnOnce = (key: string, message: string) => api.log.warnOnce(key, message);
  return {
    specificationVersion: 'v1',
    probe: probe(api, targetFor),
    transcribe: async (request) => {
      const ref = request.provider;
      const onInterim = (text: string) => {
        try {
          request.onInterim(text);
        } catch (err) {
          warnOnce('listener:asr', `a transcription interim listener threw (ignored; the dictation goes on): ${describeError(err)}`);
        }
      };
      // The streamed transcript when this recording was streamed; undefined (logged) → upload it.
      const streamed = await realtime.finish(request, onInterim);
      if (streamed) return streamed;
      const options = ref.options;
      const deployment = deploymentFor(ref, 'asr', request.model);
      const endpoint = resolveEndpoint(options);
      const params = transcriptionParams(request, {
        model: deployment,
        streaming: streamsTranscription(options.streamAsr, endpoint, deployment),
        keywords: sendsKeywords({ keywords: options.keywords }, deployment),
      });
      const result = await call(
        ref,
        request.session.config,
        { operation: 'transcriptions', deployment, capability: 'asr', signal: request.signal },
        (target) =>
          transcribeWithinLimit(
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
          ),
      );
      const warnings =
        result.how === 'split'
          ? [`the recording was over provider "${ref.name}"'s upload limit: transcribed in ${result.parts} parts cut at pauses`]
          : undefined;
      return {
        text: result.text,
        model: deployment,
        language: result.language,
        durationSec: result.durationSec,
        warnings,
        usage: result.usage,
      };
    },
  };
}

/** Correction by the instance's `correction` deployment; Azure's content filter is "no correction". */
export function correctionProvider(api: AzureApi, { call, deploymentFor }: AzureCalls): CorrectionProviderV1<ProviderOptions> {
  const warnOnce = (key: string, message: string) => api.log.warnOnce(key, message);
  return {
    specificationVersion: 'v1',
    correct: async (request) => {
      const ref = request.provider;
      const deployment = deploymentFor(ref, 'correction', request.model);
      const params = completionParams(request, deployment);
      const operation: WireOperation = params.protocol === 'chat' ? 'chat' : 'responses';
      const onDelta = (text: string) => {
        try {
          request.onDelta(text);
        } catch (err) {
          warnOnce('listener:correction', `a correction delta listener threw (ignored; the dictation goes on): ${describeError(err)}`);
        }
      };
      const filtered = () => {
        api.log.warn(
          `provider "${ref.name}": Azure's content filter blocked the correction by deployment "${deployment}" (ResponsibleAIPolicyViolation); the raw transcript is delivered uncorrected`,
        );
        return { text: null, model: deployment, reason: 'content filter' };
      };
      let result;
      try {
        result = await call(
          ref,
          request.session.config,
          { operation, deployment, capability: 'correction', signal: request.signal },
          (target) => complete(target, params, { signal: request.signal, onDelta }),
        );
      } catch (err) {
        if (isContentFilter(err)) return filtered();
        throw err;
      }
      if (result.text === null) {
        if (result.reason === 'content_filter') return filtered();
        api.log.info(`provider "${ref.name}" gave no usable correction (${result.reason ?? 'empty'})`);
      }
      return { text: result.text, model: deployment, reason: result.reason, usage: result.usage };
    },
  };
}

// `koto doctor`: an authenticated GET of the model list (`/openai/models?api-version=…`, or
// `/openai/v1/models`) proves the URL shape, the api-version, the TLS chain and the
// credentials in one request. Deployments are checked by name on first use, with a clear error.
function probe(api: AzureApi, targetFor: AzureCalls['targetFor']): (request: ProbeRequest<ProviderOptions>) => Promise<ProbeResult> {
  return async ({ provider, signal }) => {
    const { target, endpoint, auth } = targetFor(provider, api.config());
    const summary = `${endpoint.shape} API${endpoint.apiVersion ? ` ${endpoint.apiVersion}` : ''}, auth: ${auth.mode}`;
    let status: number;
    try {
      const res = await send(target, { operation: 'models', model: undefined, method: 'GET', signal, what: 'the check' });
      await res.body.dump();
      status = res.status;
    } catch (err) {
      throw explain(err, provider, { endpoint, auth, operation: 'models', deployment: undefined, capability: undefined });
    }
    const deployments = Object.entries(endpoint.deployments)
      .filter(([, name]) => name !== undefined)
      .map(([capability, name]) => `${capability}=${name}`)
      .join(', ');
    return {
      ok: true,
      detail: `${endpoint.display} answered ${status} (${summary}): reachable, credentials accepted${deployments ? `; deployments ${deployments} are checked on first use` : ''}`,
    };
  };
}
