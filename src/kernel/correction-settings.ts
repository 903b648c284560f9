import type { KotoConfig } from './config/validate.ts';
import type { CorrectionSettings, ProviderOptionsRecord } from './types.ts';

/**
 * Keys of the `correction` section that belong to one wire format (OpenAI's chat / responses),
 * not to correction as such. Users still write them in `correction` (and in profiles); they
 * reach the provider as `request.providerOptions`, for the provider that understands them.
 */
const WIRE_KEYS = ['protocol', 'topP', 'maxTokensParam', 'reasoningEffort'] as const;

/** The provider-neutral part of the `correction` section that a correction request carries. */
export function correctionSettings(section: KotoConfig['correction'], temperature?: number): CorrectionSettings {
  return Object.freeze({
    enabled: section.enabled,
    stream: section.stream,
    temperature: temperature ?? section.temperature,
    maxTokens: section.maxTokens,
    timeoutMs: section.timeoutMs,
    retries: section.retries,
  });
}

/** The provider-specific keys of the `correction` section, as the user set them (or their defaults). */
export function correctionProviderOptions(section: KotoConfig['correction']): ProviderOptionsRecord {
  const out: Record<string, unknown> = {};
  for (const key of WIRE_KEYS) if (section[key] !== undefined) out[key] = section[key];
  return Object.freeze(out);
}
