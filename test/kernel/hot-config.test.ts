import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

let server: OpenAIServer;
let kernel: Kernel | undefined;
let home: ReturnType<typeof tempHome>;
let configFile: string;

/** Polls until `check` holds; the limit is a hang guard (a watcher on a loaded machine can take seconds). */
async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function configText(overrides: { model?: string; headersTimeoutMs?: number; extra?: string } = {}): string {
  return [
    'providers:',
    '  main:',
    '    use: openai-compatible',
    `    baseUrl: ${server.baseUrl}`,
    '    apiKey: sk-hot-config-test',
    'correction:',
    `  model: ${overrides.model ?? 'model-a'}`,
    '  stream: false',
    '  timeoutMs: 60000', // held answers wait for server.release(), not for a deadline
    'dictionary: ./dictionary.txt',
    'transport:',
    `  ca: ${JSON.stringify(server.ca)}`,
    `  headersTimeoutMs: ${overrides.headersTimeoutMs ?? 30000}`,
    overrides.extra ?? '',
    '',
  ].join('\n');
}

/** Editors' atomic save: write a temp file beside it, rename it over the original. */
function atomicWrite(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function lastModel(): unknown {
  const chats = server.requests.filter((r) => r.path.endsWith('/chat/completions'));
  return (chats.at(-1)?.json as { model?: string } | undefined)?.model;
}

beforeEach(async () => {
  server = await startOpenAIServer({ complete: (req) => JSON.stringify((req.json as { messages: unknown[] }).messages.length) });
  home = tempHome('koto-hot-');
  configFile = path.join(home.dir, 'koto.yaml');
  writeFileSync(path.join(home.dir, 'dictionary.txt'), 'Kubernetes\n');
  writeFileSync(configFile, configText());
  kernel = await createKernel({
    configPath: configFile,
    env: { KOTO_HOME: home.dir },
    builtins: ['openai-compatible'],
    logLevel: 'silent',
    watch: { debounceMs: 50 },
  });
});

afterEach(async () => {
  await kernel?.close();
  await server.close();
  home.cleanup();
});

describe('hot config', () => {
  it('a changed model reaches the next request without a new connection or a transport rebuild', async () => {
    const k = kernel!;
    await k.correct('first');
    expect(lastModel()).toBe('model-a');
    const handshakes = server.stats.tlsHandshakes;
    writeFileSync(configFile, configText({ model: 'model-b' }));
    await waitFor(() => k.configGeneration === 2, 'the reload');
    await k.correct('second');
    expect(lastModel()).toBe('model-b');
    expect(server.stats.tlsHandshakes).toBe(handshakes);
    expect(k.transportGeneration).toBe(1);
    expect(k.diagnostics()).toMatchObject({ configGeneration: 2, transportGeneration: 1, lastConfigError: undefined });
  });

  it('a changed transport timeout rebuilds the client; a request in flight completes; old connections close', async () => {
    const k = kernel!;
    await k.correct('warm');
    // Held until the rebuild is seen, so it is in flight during the rebuild however slow the machine.
    server.inject({ path: '/chat/completions', delayMs: 60_000 });
    const inFlight = k.correct('slow one');
    await server.waitForRequests(2);
    writeFileSync(configFile, configText({ headersTimeoutMs: 20000 }));
    await waitFor(() => k.transportGeneration === 2, 'the transport rebuild');
    server.release();
    const result = await inFlight;
    expect(result.fallback).toBe(false);
    await k.settled();
    await k.correct('after');
    expect(server.stats.tlsHandshakes).toBe(2);
    expect(server.openConnections).toBe(1);
    expect(k.config.transport.headersTimeoutMs).toBe(20000);
  });

  it('an invalid edit keeps the old config serving, names the line, and clears once fixed', async () => {
    const k = kernel!;
    writeFileSync(configFile, `${configText()}correction:\n  model: [broken\n`);
    await waitFor(() => k.lastConfigError !== undefined, 'the error');
    expect(k.lastConfigError?.code).toBe('KOTO_ERR_CONFIG_PARSE');
    expect(k.lastConfigError?.message).toMatch(/koto\.yaml:\d+:\d+: invalid YAML/);
    await k.correct('still works');
    expect(lastModel()).toBe('model-a');
    expect(k.configGeneration).toBe(1);

    writeFileSync(configFile, configText({ extra: 'asr:\n  temprature: 1' }));
    await waitFor(() => k.lastConfigError?.code === 'KOTO_ERR_CONFIG_INVALID', 'the schema error');
    expect(k.lastConfigError?.message).toContain('asr.temprature: unknown key');

    writeFileSync(configFile, configText({ model: 'model-c' }));
    await waitFor(() => k.lastConfigError === undefined, 'the error to clear');
    await k.correct('fixed');
    expect(lastModel()).toBe('model-c');
  });

  it('detects atomic rename saves and delete-then-recreate', async () => {
    const k = kernel!;
    atomicWrite(configFile, configText({ model: 'model-renamed' }));
    await waitFor(() => k.config.correction.model === 'model-renamed', 'the atomic save');
    unlinkSync(configFile);
    await waitFor(() => k.lastConfigError?.code === 'KOTO_ERR_CONFIG_NOT_FOUND', 'the missing file to be reported');
    expect(k.config.correction.model).toBe('model-renamed');
    writeFileSync(configFile, configText({ model: 'model-recreated' }));
    await waitFor(() => k.config.correction.model === 'model-recreated', 'the recreated file');
    expect(k.lastConfigError).toBeUndefined();
  });

  it('picks up an edit of a referenced file (the dictionary)', async () => {
    const k = kernel!;
    expect(k.config.resolved.dictionary).toEqual(['Kubernetes']);
    atomicWrite(path.join(home.dir, 'dictionary.txt'), 'Kubernetes\nKoto\n');
    await waitFor(() => k.config.resolved.dictionary.length === 2, 'the dictionary reload');
    expect(k.config.resolved.dictionary).toEqual(['Kubernetes', 'Koto']);
    expect(k.transportGeneration).toBe(1);
  });

  it('coalesces 50 rapid edits into a few reloads, and the last edit wins', async () => {
    const k = kernel!;
    for (let i = 1; i <= 50; i++) writeFileSync(configFile, configText({ model: `model-${i}` }));
    await waitFor(() => k.config.correction.model === 'model-50', 'the last edit');
    await k.settled();
    expect(k.config.correction.model).toBe('model-50');
    expect(k.configGeneration).toBeLessThanOrEqual(6);
  });

  it('a session already running finishes with the config it started with', async () => {
    const k = kernel!;
    server.inject({ path: '/chat/completions', delayMs: 60_000 }); // held until the reload is seen
    const running = k.correct('long');
    await server.waitForRequests(1);
    writeFileSync(configFile, configText({ model: 'model-next' }));
    await waitFor(() => k.config.correction.model === 'model-next', 'the reload');
    server.release();
    await running;
    const firstChat = server.requests.find((r) => r.path.endsWith('/chat/completions'));
    expect((firstChat?.json as { model: string }).model).toBe('model-a');
    await k.correct('next');
    expect(lastModel()).toBe('model-next');
  });

  it('kernel.reload() is explicit and reports what changed', async () => {
    const k = kernel!;
    const same = await k.reload();
    expect(same).toMatchObject({ ok: true, changed: [], transportChanged: false });
  });
});
