/**
 * The versioned provider contracts through a real kernel: `api.provide.*` refuses what this
 * koto-voice cannot run (one line, the fix, KOTO_ERR_PLUGIN_INVALID, exit 3), and a V1 provider
 * is called through the kernel's own hooks: typed options in, its result into the session,
 * raw taps of the same hooks still working around it.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { definePlugin, STAGE, z, type AsrRequest, type CorrectionRequest, type Kernel, type OutputRequest } from '../../src/index.ts';
import { fakeAudioSource, tonePcm, toneWav } from '../../src/testing/index.ts';
import openai from '../../plugins/openai-compatible/index.ts';
import { failure, tempHome, testKernel } from '../support/index.ts';

const home = tempHome();
afterAll(() => home.cleanup());
let kernel: Kernel | undefined;
afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
});

const NAME = 'spec-provider';
const instance = z.strictObject({ region: z.enum(['eu', 'us']), greeting: z.string().default('hello') });

type Loose = Record<'asr' | 'correction' | 'output' | 'audioSource', (...args: unknown[]) => void>;

/** A plugin that registers whatever `register` gives it (what untyped JavaScript could pass). */
function registering(register: (provide: Loose) => void) {
  return definePlugin({
    name: 'registering',
    capabilities: ['asr', 'correction'],
    outputs: { declared: z.object({}) },
    audioSources: ['declared'],
    apply(api) {
      register(api.provide as unknown as Loose);
    },
  });
}

async function refused(register: Parameters<typeof registering>[0]) {
  return failure(testKernel({}, { plugins: [registering(register)], env: { KOTO_HOME: home.dir } }));
}

describe('api.provide: registration', () => {
  it('refuses a provider built for a spec version this koto-voice does not know, saying how to fix it', async () => {
    const err = await refused((provide) => provide.asr({ specificationVersion: 'v2', transcribe: async () => ({ text: '' }) }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_INVALID');
    expect(err.exitCode).toBe(3);
    expect(err.plugin).toBe('registering');
    expect(err.message).toBe(
      'plugin "registering" registered an ASR provider for provider spec v2, which this koto-voice does not know (it runs v1)',
    );
    expect(err.fix).toBe('this plugin was built for provider spec v2; update koto-voice or the plugin');
  });

  it('refuses a provider without a version, without its method, or of a capability the plugin does not declare', async () => {
    const bare = await refused((provide) => provide.correction({ correct: async () => ({ text: null }) }));
    expect(bare.code).toBe('KOTO_ERR_PLUGIN_INVALID');
    expect(bare.message).toContain('registered a correction provider without a specificationVersion');
    expect(bare.fix).toContain("specificationVersion: 'v1'");

    const noMethod = await refused((provide) => provide.output('declared', { specificationVersion: 'v1' }));
    expect(noMethod.message).toContain('registered the output "declared" without a deliver() method');

    const undeclared = await refused((provide) =>
      provide.audioSource('elsewhere', { specificationVersion: 'v1', open: async () => undefined }),
    );
    expect(undeclared.message).toContain('registered the audio source "elsewhere" it does not declare');

    const incapable = await failure(
      testKernel(
        {},
        {
          plugins: [
            definePlugin({
              name: 'asr-only',
              capabilities: ['asr'],
              apply: (api) => api.provide.correction({ specificationVersion: 'v1', correct: async () => ({ text: null }) }),
            }),
          ],
          env: { KOTO_HOME: home.dir },
        },
      ),
    );
    expect(incapable.code).toBe('KOTO_ERR_PLUGIN_INVALID');
    expect(incapable.message).toBe(`plugin "asr-only" registered a correction provider but does not declare capabilities: ['correction']`);

    const twice = await refused((provide) => {
      const asr = { specificationVersion: 'v1', transcribe: async () => ({ text: '' }) };
      provide.asr(asr);
      provide.asr(asr);
    });
    expect(twice.message).toBe('plugin "registering" registered an ASR provider twice');
  });
});

describe('api.provide: a V1 provider in a session', () => {
  it('gets typed options and neutral settings; its answers reach the session; raw taps still run around it', async () => {
    const seen: {
      asr?: AsrRequest<z.output<typeof instance>>;
      correction?: CorrectionRequest<z.output<typeof instance>>;
      output?: OutputRequest<{ prefix: string }>;
    } = {};
    const delivered: string[] = [];
    const raw: string[] = [];
    const provider = definePlugin({
      name: NAME,
      capabilities: ['asr', 'correction'],
      provider: instance,
      // Wire keys this provider reads from the user's `correction` section.
      correctionOptions: z.object({ protocol: z.enum(['chat', 'responses']).default('chat'), topP: z.number().optional() }),
      outputs: { collect: z.strictObject({ prefix: z.string() }) },
      apply(api) {
        api.provide.asr({
          specificationVersion: 'v1',
          async transcribe(request) {
            seen.asr = request;
            // Typed: no cast between the schema and the request.
            return { text: `${request.provider.options.greeting} from ${request.provider.options.region}`, model: 'spec-asr' };
          },
          probe: async ({ provider: ref }) => ({ ok: true, detail: `region ${ref.options.region} reachable` }),
        });
        api.provide.correction({
          specificationVersion: 'v1',
          async correct(request) {
            seen.correction = request;
            return { text: `${request.text.toUpperCase()}.`, model: 'spec-fix' };
          },
        });
        api.provide.output('collect', {
          specificationVersion: 'v1',
          async deliver(request) {
            seen.output = request;
            delivered.push(`${request.options.prefix}${request.text}`);
          },
        });
        expect(api.instances().map((ref) => `${ref.name}:${ref.options.region}`)).toEqual(['main:eu']);
        expect(api.ownInstance({ name: 'x', use: 'someone-else', options: {} })).toBeUndefined();
      },
    });
    const observer = definePlugin({
      name: 'observer',
      apply(api) {
        // A raw tap on the provider's own hook, before it: sees the request, passes (undefined).
        api.hooks.asr.for(NAME).tapPromise({ name: 'observer', stage: STAGE.PRE }, async (request) => {
          raw.push(`asr:${request.provider.name}`);
          return undefined;
        });
        api.hooks.transcript.tapPromise('observer', async (value) => {
          raw.push(`transcript:${value.text}`);
          return { ...value, text: `${value.text}!` };
        });
      },
    });
    ({ kernel } = await testKernel(
      {
        providers: { main: { use: NAME, region: 'eu' } },
        asr: { provider: 'main' },
        // Wire keys in the correction section (the user's config shape is unchanged).
        correction: { provider: 'main', protocol: 'responses', topP: 0.5, temperature: 0.2, maxTokens: 300 },
        output: [{ use: 'collect', prefix: '> ' }],
      },
      { plugins: [provider, observer], env: { KOTO_HOME: home.dir } },
    ));

    const record = await kernel.run({ data: toneWav(), name: 'spec.wav' });
    expect(record.state).toBe('done');
    expect(record.raw).toBe('hello from eu!');
    expect(record.text).toBe('HELLO FROM EU!.');
    expect(record.asrModel).toBe('spec-asr');
    expect(record.correctionModel).toBe('spec-fix');
    expect(delivered).toEqual(['> HELLO FROM EU!.']);
    expect(raw).toEqual(['asr:main', 'transcript:hello from eu']);

    expect(seen.asr?.provider).toEqual({ name: 'main', use: NAME, options: { region: 'eu', greeting: 'hello' } });
    // Provider-neutral settings; the wire fields arrive apart, as the user wrote them.
    expect(seen.correction?.settings).toEqual({
      enabled: true,
      stream: true,
      temperature: 0.2,
      maxTokens: 300,
      timeoutMs: 8000,
      retries: 1,
    });
    expect(seen.correction?.providerOptions).toEqual({ protocol: 'responses', topP: 0.5 });
    expect(seen.output?.options).toEqual({ prefix: '> ' });

    // The probe went onto the probe hook; `koto plugins` lists the adapted taps as the plugin's own.
    expect(await kernel.probe('main')).toEqual({ ok: true, detail: 'region eu reachable' });
    const info = kernel.plugins().find((p) => p.name === NAME);
    expect(info?.taps).toEqual(
      expect.arrayContaining(['asr:spec-provider', 'correction:spec-provider', 'output:collect', 'probe:spec-provider']),
    );
  });

  it('a V1 error keeps its code and is tagged with the plugin and hook; a raw tap of the plugin can still answer first', async () => {
    const plugin = definePlugin({
      name: NAME,
      capabilities: ['asr'],
      provider: instance,
      apply(api) {
        api.provide.asr({
          specificationVersion: 'v1',
          transcribe: async (request) => {
            if (request.provider.options.region === 'us') throw new Error('unreachable region');
            return { text: 'v1 answer' };
          },
        });
        api.hooks.asr
          .for(NAME)
          .tapPromise({ name: NAME, stage: STAGE.PRE }, async (request) =>
            request.provider.name === 'cached' ? { text: 'raw answer' } : undefined,
          );
      },
    });
    ({ kernel } = await testKernel(
      {
        providers: { main: { use: NAME, region: 'us' }, cached: { use: NAME, region: 'eu' } },
        asr: { provider: 'main', retries: 0 },
        correction: { enabled: false },
      },
      { plugins: [plugin], env: { KOTO_HOME: home.dir } },
    ));
    const err = await failure(kernel.transcribe({ data: toneWav(), name: 'a.wav' }));
    expect(err.code).toBe('KOTO_ERR_HOOK_FAILED');
    expect(err.plugin).toBe(NAME);
    expect(err.hook).toBe(`asr:${NAME}`);
    expect((await kernel.transcribe({ data: toneWav(), name: 'b.wav' }, { provider: 'cached' })).text).toBe('raw answer');
  });

  it('a V1 audio source records a live session', async () => {
    const plugin = definePlugin({
      name: 'spec-source',
      capabilities: ['asr'],
      audioSources: ['spec'],
      apply(api) {
        api.provide.audioSource('spec', {
          specificationVersion: 'v1',
          open: async ({ signal }) => fakeAudioSource(tonePcm({ seconds: 0.4 }), { signal }),
          devices: async () => [{ name: 'spec-device', isDefault: true, backend: 'spec' }],
        });
        api.provide.asr({
          specificationVersion: 'v1',
          transcribe: async (request) => ({ text: `${request.audio.pcm?.samples.length ?? 0} samples` }),
        });
      },
    });
    ({ kernel } = await testKernel(
      { audio: { source: 'spec' }, providers: { s: { use: 'spec-source' } }, asr: { provider: 's' }, correction: { enabled: false } },
      { plugins: [plugin], env: { KOTO_HOME: home.dir } },
    ));
    expect(await kernel.devices('spec')).toEqual([{ name: 'spec-device', isDefault: true, backend: 'spec' }]);
    const recording = await kernel.record();
    const record = await recording.stop();
    expect(record.state).toBe('done');
    expect(record.text).toMatch(/^\d+ samples$/);
  });
});

describe('correctionOptions: correction keys a plugin declares', () => {
  const seen: unknown[] = [];
  const toned = definePlugin({
    name: 'toned',
    capabilities: ['asr', 'correction'],
    correctionOptions: z.object({ tone: z.enum(['formal', 'casual']).default('casual') }),
    apply(api) {
      api.provide.asr({ specificationVersion: 'v1', transcribe: async () => ({ text: 'hello' }) });
      api.provide.correction({
        specificationVersion: 'v1',
        async correct(request) {
          seen.push(request.providerOptions);
          return { text: request.text };
        },
      });
    },
  });
  const base = { providers: { t: { use: 'toned' } }, asr: { provider: 't' }, correction: { provider: 't' } };

  it('reach the provider as providerOptions (defaults applied, profiles merged key by key)', async () => {
    seen.length = 0;
    ({ kernel } = await testKernel(
      { ...base, profiles: [{ name: 'mail', match: { app: 'Thunderbird' }, correction: { tone: 'formal' } }] },
      { plugins: [toned], env: { KOTO_HOME: home.dir } },
    ));
    await kernel.correct('hello');
    await kernel.run({ data: toneWav(), name: 'p.wav' }, { profile: 'mail', defaultOutputs: [] });
    expect(seen).toEqual([{ tone: 'casual' }, { tone: 'formal' }]);
  });

  it('a typo or a bad value is a config error naming the key; an undeclared wire key too', async () => {
    const typo = await failure(
      testKernel({ ...base, correction: { provider: 't', tonne: 'formal' } }, { plugins: [toned], env: { KOTO_HOME: home.dir } }),
    );
    expect(typo.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(typo.message).toMatch(/correction.*tonne/);
    const bad = await failure(
      testKernel({ ...base, correction: { provider: 't', tone: 'loud' } }, { plugins: [toned], env: { KOTO_HOME: home.dir } }),
    );
    expect(bad.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(bad.message).toContain('correction.tone');
    const inProfile = await failure(
      testKernel(
        { ...base, profiles: [{ name: 'mail', match: { app: 'x' }, correction: { tone: 'loud' } }] },
        { plugins: [toned], env: { KOTO_HOME: home.dir } },
      ),
    );
    expect(inProfile.message).toContain('profiles[0] ("mail")');
    expect(inProfile.message).toContain('correction.tone');
    // No loaded plugin reads `protocol` here: it is refused like any unknown key.
    const unread = await failure(
      testKernel({ ...base, correction: { provider: 't', protocol: 'chat' } }, { plugins: [toned], env: { KOTO_HOME: home.dir } }),
    );
    expect(unread.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(unread.message).toMatch(/correction.*protocol/);
  });

  it("a plugin may not redeclare the kernel's own correction keys", async () => {
    const clash = definePlugin({ name: 'clash', correctionOptions: z.object({ timeoutMs: z.number() }), apply: () => undefined });
    const err = await failure(testKernel({}, { plugins: [clash], env: { KOTO_HOME: home.dir } }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_INVALID');
    expect(err.message).toBe('plugin "clash" declares correction.timeoutMs in correctionOptions, which is the kernel\'s own key');
  });

  it("a key two plugins declare differently is refused at start; each provider gets only its own plugin's keys", async () => {
    const rival = definePlugin({ name: 'rival', correctionOptions: z.object({ tone: z.string() }), apply: () => undefined });
    const err = await failure(testKernel(base, { plugins: [toned, rival], env: { KOTO_HOME: home.dir } }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_INVALID');
    expect(err.message).toBe('plugin "rival" declares correction.tone, which plugin "toned" declares differently');
    expect(err.fix).toContain('give the option a name of its own');
    // openai-compatible loaded next to toned: toned is not handed OpenAI's protocol (set or defaulted).
    seen.length = 0;
    ({ kernel } = await testKernel(
      { ...base, correction: { provider: 't', protocol: 'responses' } },
      { plugins: [toned, openai], env: { KOTO_HOME: home.dir } },
    ));
    await kernel.correct('hello');
    expect(seen).toEqual([{ tone: 'casual' }]);
  });

  it('an OpenAI wire key in an offline config loads the plugin that declares it: valid at start as after any reload', async () => {
    // Built-ins chosen by the config (the default): no OpenAI provider, but `protocol` is set.
    ({ kernel } = await testKernel(
      {
        providers: { off: { use: 'pocketsphinx' }, tidy: { use: 'local-correction' } },
        asr: { provider: 'off' },
        correction: { provider: 'tidy', protocol: 'chat' },
      },
      { builtins: true, env: { KOTO_HOME: home.dir } },
    ));
    expect((kernel.config.correction as Record<string, unknown>).protocol).toBe('chat');
  });

  it('the OpenAI wire keys of the documented config stay valid, declared by openai-compatible', async () => {
    ({ kernel } = await testKernel(
      { correction: { protocol: 'responses', topP: 0.9, maxTokensParam: 'max_tokens', reasoningEffort: 'low' } },
      { plugins: [openai], env: { KOTO_HOME: home.dir } },
    ));
    const section = kernel.config.correction as Record<string, unknown>;
    expect([section.protocol, section.topP, section.maxTokensParam, section.reasoningEffort]).toEqual([
      'responses',
      0.9,
      'max_tokens',
      'low',
    ]);
    await kernel.close();
    ({ kernel } = await testKernel({}, { plugins: [openai], env: { KOTO_HOME: home.dir } }));
    expect((kernel.config.correction as Record<string, unknown>).protocol).toBe('chat');
  });
});
