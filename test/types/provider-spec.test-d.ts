/**
 * Type-level contract of the plugin API (run by vitest's typecheck and by `tsc`): what a plugin
 * author's editor and compiler see. A wrong assertion here fails the test command.
 */
import { describe, expectTypeOf, test } from 'vitest';
import {
  definePlugin,
  z,
  type AsrProviderV1,
  type AsrRequest,
  type CorrectionProviderV1,
  type CorrectionSettings,
  type OutputV1,
  type PluginApi,
  type PluginHooks,
  type ProviderOptionsOf,
  type ProviderOptionsRecord,
  type ProviderRef,
  type TapOnly,
} from 'koto-voice';
import type { ProviderOptions as OpenAiOptions } from '../../plugins/openai-compatible/options.ts';
import type { CorrectionOptions as LocalOptions } from '../../plugins/local-correction/options.ts';
// Loads the plugins' `declare module 'koto-voice'` registry entries into this program.
import '../../plugins/openai-compatible/index.ts';
import '../../plugins/local-correction/index.ts';

const instanceSchema = z.strictObject({ baseUrl: z.url(), apiKey: z.string(), retries: z.number().default(1) });
type Instance = z.output<typeof instanceSchema>;

describe('definePlugin', () => {
  test('apply receives the options its zod schema produces', () => {
    definePlugin({
      name: 'typed-options',
      options: z.strictObject({ threshold: z.number().default(3), label: z.string().optional() }),
      apply(_api, options) {
        expectTypeOf(options).toEqualTypeOf<Readonly<{ threshold: number; label?: string | undefined }>>();
      },
    });
  });

  test('the provider schema types request.provider.options of api.provide.*', () => {
    definePlugin({
      name: 'typed-provider',
      capabilities: ['asr', 'correction'],
      provider: instanceSchema,
      apply(api) {
        api.provide.asr({
          specificationVersion: 'v1',
          async transcribe(request) {
            expectTypeOf(request.provider.options).toEqualTypeOf<Readonly<Instance>>();
            expectTypeOf(request.provider.options.retries).toBeNumber();
            return { text: '' };
          },
        });
        api.provide.correction({
          specificationVersion: 'v1',
          async correct(request) {
            expectTypeOf(request.provider.options.baseUrl).toBeString();
            expectTypeOf(request.settings).toEqualTypeOf<CorrectionSettings>();
            // Provider-specific correction keys are the provider's to parse: nothing is assumed.
            expectTypeOf(request.providerOptions).toEqualTypeOf<ProviderOptionsRecord>();
            return { text: null };
          },
        });
        expectTypeOf(api.instances()).toEqualTypeOf<readonly ProviderRef<Readonly<Instance>>[]>();
        expectTypeOf(api.ownInstance(undefined)).toEqualTypeOf<ProviderRef<Readonly<Instance>> | undefined>();
      },
    });
  });

  test('a plugin without a provider schema gets the generic record', () => {
    definePlugin({
      name: 'untyped-provider',
      capabilities: ['asr'],
      apply(api) {
        api.provide.asr({
          specificationVersion: 'v1',
          async transcribe(request) {
            expectTypeOf(request.provider.options).toEqualTypeOf<Readonly<ProviderOptionsRecord>>();
            return { text: '' };
          },
        });
      },
    });
  });

  test('outputs: the name must be declared, and its schema types request.options', () => {
    definePlugin({
      name: 'typed-output',
      outputs: { webhook: z.strictObject({ url: z.url(), token: z.string().optional() }) },
      apply(api) {
        api.provide.output('webhook', {
          specificationVersion: 'v1',
          async deliver(request) {
            expectTypeOf(request.options).toEqualTypeOf<Readonly<{ url: string; token?: string | undefined }>>();
          },
        });
        // @ts-expect-error an output the plugin does not declare
        api.provide.output('elsewhere', { specificationVersion: 'v1', deliver: async () => undefined });
      },
    });
  });
});

describe('the V1 contracts', () => {
  test('a provider without specificationVersion does not compile', () => {
    // @ts-expect-error specificationVersion is required
    const asr: AsrProviderV1 = { transcribe: async () => ({ text: '' }) };
    // @ts-expect-error only 'v1' is a V1 provider
    const correction: CorrectionProviderV1 = { specificationVersion: 'v2', correct: async () => ({ text: null }) };
    // @ts-expect-error deliver is required
    const output: OutputV1 = { specificationVersion: 'v1' };
    void [asr, correction, output];
  });

  test('a provider for other options is refused', () => {
    definePlugin({
      name: 'mismatch',
      capabilities: ['asr'],
      provider: instanceSchema,
      apply(api) {
        const other: AsrProviderV1<{ readonly region: string }> = { specificationVersion: 'v1', transcribe: async () => ({ text: '' }) };
        // @ts-expect-error its requests would not carry `region`
        api.provide.asr(other);
      },
    });
  });
});

describe('ProviderOptionsRegistry', () => {
  test('a declared plugin has its options, an undeclared one the generic record', () => {
    expectTypeOf<ProviderOptionsOf<'openai-compatible'>>().toEqualTypeOf<OpenAiOptions>();
    expectTypeOf<ProviderOptionsOf<'local-correction'>>().toEqualTypeOf<LocalOptions>();
    expectTypeOf<ProviderOptionsOf<'koto-plugin-nobody'>>().toEqualTypeOf<ProviderOptionsRecord>();
    expectTypeOf<AsrRequest<ProviderOptionsOf<'openai-compatible'>>['provider']['options']['asrModel']>().toBeString();
  });

  test('definePlugin holds a declared plugin to its declared options', () => {
    definePlugin({
      name: 'openai-compatible',
      capabilities: ['asr'],
      // @ts-expect-error this schema does not produce the registry's openai-compatible options
      provider: instanceSchema,
      apply: () => undefined,
    });
  });
});

describe('tap-only hooks', () => {
  test('plugins tap hooks, never call them', () => {
    expectTypeOf<PluginApi['hooks']>().toEqualTypeOf<PluginHooks>();
    type AsrHook = ReturnType<PluginHooks['asr']['for']>;
    expectTypeOf<AsrHook>().toHaveProperty('tapPromise');
    type Has<T, K extends string> = K extends keyof T ? true : false;
    expectTypeOf<Has<AsrHook, 'promise'>>().toEqualTypeOf<false>();
    expectTypeOf<Has<AsrHook, 'call'>>().toEqualTypeOf<false>();
    expectTypeOf<Has<AsrHook, 'intercept'>>().toEqualTypeOf<false>();
    expectTypeOf<Has<PluginHooks['sessionStart'], 'promise'>>().toEqualTypeOf<false>();
    expectTypeOf<Has<PluginHooks['configChanged'], 'call'>>().toEqualTypeOf<false>();
    expectTypeOf<Has<PluginHooks['sessionStart'], 'tapPromise'>>().toEqualTypeOf<true>();
    expectTypeOf<TapOnly<{ call(): void; tap(): void }>>().toEqualTypeOf<{ tap(): void }>();
  });
});
