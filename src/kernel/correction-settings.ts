import { correctionSchema } from './config/schema.ts';
import type { KotoConfig } from './config/validate.ts';
import type { CorrectionSettings, ProviderOptionsRecord } from './types.ts';

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

/**
 * The keys of the `correction` section that plugins declared (`correctionOptions`: a wire
 * format's `protocol`, `topP`, …), as the user set them or their schema defaulted them: they
 * reach the provider as `request.providerOptions`, for the provider that understands them.
 */
export function correctionProviderOptions(section: KotoConfig['correction']): ProviderOptionsRecord {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(section)) {
    if (!Object.hasOwn(correctionSchema.shape, key) && value !== undefined) out[key] = value;
  }
  return Object.freeze(out);
}
