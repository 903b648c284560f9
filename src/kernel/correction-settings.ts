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
 * The keys of the `correction` section that the provider's plugin declared (`correctionOptions`:
 * a wire format's `protocol`, `topP`, …), as the user set them or their schema defaulted them:
 * they reach that provider as `request.providerOptions`. Another plugin's keys never do.
 */
export function correctionProviderOptions(config: Pick<KotoConfig, 'correction' | 'resolved'>, use: string): ProviderOptionsRecord {
  const owners = config.resolved.correctionKeyOwners ?? {};
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config.correction)) {
    if (value !== undefined && !Object.hasOwn(correctionSchema.shape, key) && owners[key]?.includes(use)) out[key] = value;
  }
  return Object.freeze(out);
}
