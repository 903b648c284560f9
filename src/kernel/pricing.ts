import type { ProviderUsage } from './types.ts';

/** USD: `input`/`output` per 1M tokens, `perMinute` per minute of audio. */
export interface Price {
  readonly input?: number | undefined;
  readonly output?: number | undefined;
  readonly perMinute?: number | undefined;
}

/**
 * Default prices of the models Koto's docs name, as published on 2026-12-05 (looked up that
 * day): OpenAI's model pages (developers.openai.com/api/docs/models/gpt-4o-transcribe,
 * …/compare?model=gpt-4o-mini-transcribe: audio input / output per 1M tokens), whisper-1 at
 * $0.006 per minute, gpt-4.1-mini $0.40 / $1.60, gpt-4o-mini $0.15 / $0.60 and gpt-4o $2.50 /
 * $10 per 1M tokens (OpenAI pricing as listed by AI gateways' model pages). Azure OpenAI's
 * global-standard deployments of these models list the same prices, so one table serves both
 * when an Azure deployment is named after its model. Prices change: `pricing:` in the config
 * overrides any entry, and a model missing here has an unknown cost (null), never zero.
 */
export const PRICES_AS_OF = '2026-12-05';

export const DEFAULT_PRICES: Readonly<Record<string, Price>> = Object.freeze({
  'gpt-4o-transcribe': { input: 2.5, output: 10 },
  'gpt-4o-mini-transcribe': { input: 1.25, output: 5 },
  'whisper-1': { perMinute: 0.006 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6 },
  'gpt-4o-mini': { input: 0.15, output: 0.6 },
  'gpt-4o': { input: 2.5, output: 10 },
});

/** Plugins that run on this machine: nothing is billed. */
const LOCAL_PLUGINS: ReadonlySet<string> = new Set(['pocketsphinx', 'local-correction']);

/**
 * The price of one call: the config's `pricing` by `provider/model`, model, then provider name;
 * then the defaults by model; a local engine is free. undefined: unknown.
 */
export function priceFor(
  pricing: Readonly<Record<string, Price>>,
  call: { readonly provider: string; readonly use: string; readonly model: string | undefined },
): Price | undefined {
  const own = (key: string) => (Object.hasOwn(pricing, key) ? pricing[key] : undefined);
  const model = call.model;
  const configured = (model !== undefined ? (own(`${call.provider}/${model}`) ?? own(model)) : undefined) ?? own(call.provider);
  if (configured) return configured;
  if (model !== undefined && Object.hasOwn(DEFAULT_PRICES, model)) return DEFAULT_PRICES[model];
  if (LOCAL_PLUGINS.has(call.use)) return { input: 0, output: 0, perMinute: 0 };
  return undefined;
}

/**
 * Estimated cost in USD, or null when it cannot be known: no price, or the price is per token
 * and the provider reported no token counts (a guess would look like a bill and be wrong).
 */
export function costOf(price: Price | undefined, usage: ProviderUsage | undefined, audioSeconds: number | undefined): number | null {
  if (!price) return null;
  const values = [price.input, price.output, price.perMinute].filter((v) => v !== undefined);
  if (values.length > 0 && values.every((v) => v === 0)) return 0;
  let cost = 0;
  let priced = false;
  const tokens = usage?.inputTokens !== undefined || usage?.outputTokens !== undefined;
  if (tokens && (price.input !== undefined || price.output !== undefined)) {
    if (usage?.inputTokens !== undefined) {
      if (price.input === undefined) return null;
      cost += (usage.inputTokens * price.input) / 1e6;
    }
    if (usage?.outputTokens !== undefined) {
      if (price.output === undefined) return null;
      cost += (usage.outputTokens * price.output) / 1e6;
    }
    priced = true;
  } else if (price.perMinute !== undefined) {
    const seconds = usage?.audioSeconds ?? audioSeconds;
    if (seconds === undefined) return null;
    cost += (seconds / 60) * price.perMinute;
    priced = true;
  }
  return priced ? round(cost) : null;
}

/** Micro-dollars are the finest unit worth keeping. */
function round(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}
