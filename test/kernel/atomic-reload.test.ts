/**
 * Reload = build new → validate → swap → drain, for config and transport together (#19): the
 * first client is shaped by every plugin's transportOptions tap; a tap that throws during a
 * reload (configChanged, or transportOptions while the new client is built) leaves the old config
 * and the old client serving, and says why in lastConfigError — also when the reload came from
 * a file edit; `plugins` / `pluginOptions` changes report that a restart is needed.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKernel, definePlugin, type Kernel } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

let server: OpenAIServer;
let kernel: Kernel | undefined;
let home: ReturnType<typeof tempHome>;
let file: string;
const logs: string[] = [];
/** What the test plugin's taps do on the next call. */
const behave = { throwOnChange: false, throwOnTransport: false, transportCalls: 0 };

const saboteur = definePlugin({
  name: 'saboteur',
  apply(api) {
    api.hooks.transportOptions.tap('saboteur', (options) => {
      behave.transportCalls += 1;
      if (behave.throwOnTransport) throw new Error('the tuner broke');
      // Visible at the server: the first client already speaks HTTP/1.1 only.
      return { ...options, allowH2: false };
    });
    api.hooks.configChanged.tap('saboteur', () => {
      if (behave.throwOnChange) throw new Error('cannot take this change');
    });
  },
});

function configText(model: string, headersTimeoutMs = 30_000, extra: string[] = []): string {
  return [
    'providers:',
    `  main: { use: openai-compatible, baseUrl: ${server.baseUrl}, apiKey: sk-atomic-reload-canary }`,
    `correction: { model: ${model}, stream: false }`,
    `transport: { ca: ${JSON.stringify(server.ca)}, headersTimeoutMs: ${headersTimeoutMs} }`,
    ...extra,
    '',
  ].join('\n');
}

async function correctedWith(): Promise<unknown> {
  await kernel!.correct('hello there');
  const chats = server.requests.filter((r) => r.path.endsWith('/chat/completions'));
  return (chats.at(-1)?.json as { model?: string } | undefined)?.model;
}

beforeEach(async () => {
  Object.assign(behave, { throwOnChange: false, throwOnTransport: false, transportCalls: 0 });
  logs.length = 0;
  server = await startOpenAIServer();
  home = tempHome('koto-atomic-');
  file = path.join(home.dir, 'koto.yaml');
  writeFileSync(file, configText('model-a'), { mode: 0o600 });
  kernel = await createKernel({
    configPath: file,
    env: { KOTO_HOME: home.dir },
    builtins: ['openai-compatible'],
    plugins: [saboteur],
    logLevel: 'info',
    logSink: (entry) => logs.push(`${entry.level} ${entry.message}`),
  });
});

afterEach(async () => {
  await kernel?.close();
  await server.close();
  home.cleanup();
});

describe('atomic reload', () => {
  it('the first client is built after the plugins applied: their transportOptions taps shape it', async () => {
    expect(await correctedWith()).toBe('model-a');
    expect(behave.transportCalls).toBe(1);
    expect(kernel!.transportGeneration).toBe(1);
    expect(Object.keys(server.stats.protocols)).toEqual(['http/1.1']);
  });

  it('a configChanged tap that throws: config and client both stay old, lastConfigError names the plugin and hook; fixed, the next reload applies', async () => {
    behave.throwOnChange = true;
    writeFileSync(file, configText('model-b', 20_000));
    const outcome = await kernel!.reload();
    expect(outcome).toMatchObject({ ok: false, error: { code: 'KOTO_ERR_HOOK_FAILED', plugin: 'saboteur', hook: 'configChanged' } });
    expect(kernel!.configGeneration).toBe(1);
    expect(kernel!.transportGeneration).toBe(1);
    expect(kernel!.diagnostics().lastConfigError?.message).toContain('cannot take this change');
    expect(kernel!.config.transport.headersTimeoutMs).toBe(30_000);
    expect(await correctedWith()).toBe('model-a');
    expect(logs.join('\n')).toMatch(/error config not reloaded: .*cannot take this change.*previous config and client stay in use/);

    behave.throwOnChange = false;
    expect(await kernel!.reload()).toMatchObject({ ok: true, transportChanged: true, generation: 2 });
    expect(kernel!.transportGeneration).toBe(2);
    expect(kernel!.diagnostics().lastConfigError).toBeUndefined();
    expect(await correctedWith()).toBe('model-b');
  });

  it('a transportOptions tap that throws while the new client is built: nothing is swapped, configChanged never runs', async () => {
    let changes = 0;
    kernel!.hooks.configChanged.tap('counter', () => void (changes += 1));
    behave.throwOnTransport = true;
    writeFileSync(file, configText('model-b', 20_000));
    const outcome = await kernel!.reload();
    expect(outcome).toMatchObject({ ok: false, error: { code: 'KOTO_ERR_HOOK_FAILED', plugin: 'saboteur', hook: 'transportOptions' } });
    expect(changes).toBe(0);
    expect(kernel!.configGeneration).toBe(1);
    expect(kernel!.transportGeneration).toBe(1);
    expect(await correctedWith()).toBe('model-a');
    // A request-level edit alone builds no client: it applies even while the tap would throw.
    writeFileSync(file, configText('model-c'));
    expect(await kernel!.reload()).toMatchObject({ ok: true, transportChanged: false, generation: 2 });
    expect(await correctedWith()).toBe('model-c');
  });

  it('a failed reload from a file edit is surfaced: lastConfigError set by the watcher, the log says so', async () => {
    await kernel!.watch({ debounceMs: 50 });
    behave.throwOnChange = true;
    writeFileSync(file, configText('model-b'));
    const end = Date.now() + 30_000;
    while (!kernel!.diagnostics().lastConfigError && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    await kernel!.settled();
    expect(kernel!.diagnostics().lastConfigError).toMatchObject({ code: 'KOTO_ERR_HOOK_FAILED' });
    expect(kernel!.configGeneration).toBe(1);
    expect(logs.some((line) => line.startsWith('error config not reloaded'))).toBe(true);
  });

  it('a pluginOptions change is taken in but reported as needing a restart (status and log); reverting it clears that', async () => {
    writeFileSync(file, configText('model-a', 30_000, ['pluginOptions: { saboteur: { level: 2 } }']));
    expect(await kernel!.reload()).toMatchObject({ ok: true, changed: ['pluginOptions'] });
    expect(kernel!.diagnostics().restartNeeded).toEqual(['pluginOptions']);
    expect(logs.join('\n')).toContain('warn `pluginOptions` changed: plugins are loaded at start, so restart Koto to apply it');
    writeFileSync(file, configText('model-a'));
    expect(await kernel!.reload()).toMatchObject({ ok: true, changed: ['pluginOptions'] });
    expect(kernel!.diagnostics().restartNeeded).toEqual([]);
  });
});
