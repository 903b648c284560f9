/**
 * Lean start (issue #19): a built-in plugin the config does not use is never imported, a reload
 * that starts using one loads it then (no restart), and the kernel's manifest of the built-ins
 * says what each plugin's own declaration says.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../../src/index.ts';
import { BUILTIN_MANIFEST, neededBuiltins } from '../../src/kernel/builtins.ts';
import { builtinPluginNames, resolvePlugin } from '../../src/kernel/plugin-loader.ts';
import { tempHome } from '../support/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TRACE = path.join(ROOT, 'test', 'support', 'trace-modules.mjs');
const homes: ReturnType<typeof tempHome>[] = [];
let kernel: Kernel | undefined;

afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
  for (const home of homes.splice(0)) home.cleanup();
});

function home(): string {
  const h = tempHome('koto-lazy-');
  homes.push(h);
  return h.dir;
}

const OPENAI_ONLY = {
  providers: { main: { use: 'openai-compatible', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-lazy-test' } },
  asr: { provider: 'main' },
  correction: { provider: 'main' },
};

describe('the built-in manifest', () => {
  it('lists every built-in, each as its definePlugin declares it', async () => {
    const names = builtinPluginNames();
    expect(BUILTIN_MANIFEST.map((m) => m.name).sort()).toEqual(names);
    for (const manifest of BUILTIN_MANIFEST) {
      const { plugin } = await resolvePlugin(manifest.name, ROOT);
      expect(plugin.name).toBe(manifest.name);
      expect([...(plugin.capabilities ?? [])].sort(), manifest.name).toEqual([...(manifest.capabilities ?? [])].sort());
      expect(Object.keys(plugin.outputs ?? {}).sort(), manifest.name).toEqual([...(manifest.outputs ?? [])].sort());
      expect([...(plugin.audioSources ?? [])], manifest.name).toEqual([...(manifest.audioSources ?? [])]);
      expect(typeof plugin.defaultProviders === 'function', manifest.name).toBe(manifest.defaultProviders === true);
      // Nothing in the manifest says when to load a dependency: a built-in must not declare one.
      expect(plugin.dependencies ?? [], manifest.name).toEqual([]);
      // A manifest's correction keys are ones its plugin declares...
      for (const key of manifest.correctionKeys ?? [])
        expect(Object.keys(plugin.correctionOptions?.shape ?? {}), manifest.name).toContain(key);
      // ...and every key a built-in declares loads some built-in that declares it, so it is valid whatever providers are named.
      for (const key of Object.keys(plugin.correctionOptions?.shape ?? {})) {
        expect(
          BUILTIN_MANIFEST.some((m) => m.correctionKeys?.includes(key)),
          `correction.${key} of ${manifest.name}`,
        ).toBe(true);
      }
    }
  });

  it('a config that sets an OpenAI wire key of correction loads the plugin that declares it, whatever the providers', () => {
    const all = builtinPluginNames();
    const offline = { providers: { offline: { use: 'pocketsphinx' } }, asr: { provider: 'offline' }, correction: { provider: 'offline' } };
    expect(neededBuiltins(offline, all, { daemon: false })).not.toContain('openai-compatible');
    expect(neededBuiltins({ ...offline, correction: { protocol: 'chat' } }, all, { daemon: false })).toContain('openai-compatible');
    expect(neededBuiltins({ ...offline, profiles: [{ name: 'p', correction: { topP: 1 } }] }, all, { daemon: false })).toContain(
      'openai-compatible',
    );
  });

  it('picks what a config uses: providers, outputs, the audio source, defaults only when needed', () => {
    const all = builtinPluginNames();
    const base = ['feedback', 'focus', 'mic-native', 'outputs'];
    expect(neededBuiltins(OPENAI_ONLY, all, { daemon: false })).toEqual([...base, 'openai-compatible'].sort());
    expect(neededBuiltins(OPENAI_ONLY, all, { daemon: true })).toEqual([...base, 'hotkey', 'openai-compatible'].sort());
    // No providers: every plugin that may offer a default is asked.
    expect(neededBuiltins({}, all, { daemon: false })).toEqual(all.filter((n) => n !== 'hotkey'));
    // A fallback naming a default (`offline`) that is not under providers.
    const withFallback = { ...OPENAI_ONLY, asr: { provider: 'main', fallback: ['offline'] } };
    expect(neededBuiltins(withFallback, all, { daemon: false })).toEqual(all.filter((n) => n !== 'hotkey'));
    // Another audio source: no microphone plugin.
    expect(neededBuiltins({ ...OPENAI_ONLY, audio: { source: 'elsewhere' } }, all, { daemon: false })).not.toContain('mic-native');
    // Options for a built-in load it, so they are checked.
    expect(neededBuiltins({ ...OPENAI_ONLY, pluginOptions: { pocketsphinx: {} } }, all, { daemon: false })).toContain('pocketsphinx');
  });
});

describe('a kernel loads the built-ins its config uses', () => {
  it('an OpenAI-only config imports no Azure, pocketsphinx, local corrector, hotkey or koffi code', async () => {
    // A child process on the built dist/, so the module list is that of a real start.
    const dir = home();
    const trace = path.join(dir, 'modules.txt');
    const script = `
      const { createKernel } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'src', 'index.js')).href)});
      const kernel = await createKernel({ search: false, env: { KOTO_HOME: ${JSON.stringify(dir)} }, logLevel: 'error', config: ${JSON.stringify(OPENAI_ONLY)} });
      process.stdout.write(JSON.stringify(kernel.plugins().map((p) => p.name)));
      await kernel.close();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        KOTO_HOME: dir,
        NODE_OPTIONS: `--import=${pathToFileURL(TRACE).href}`,
        KOTO_TRACE_MODULES: trace,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(0);
    expect(JSON.parse(stdout)).toEqual(['feedback', 'focus', 'mic-native', 'openai-compatible', 'outputs']);
    const modules = readFileSync(trace, 'utf8');
    expect(modules).toContain('/dist/plugins/openai-compatible/index.js');
    for (const absent of [
      '/plugins/azure-foundry/',
      '/plugins/pocketsphinx/',
      '/plugins/local-correction/',
      '/plugins/hotkey/',
      '/node_modules/koffi/',
      '/node_modules/@picovoice/',
    ]) {
      expect(modules, absent).not.toContain(absent);
    }
  });

  it('a daemon host also loads the hotkey', async () => {
    kernel = await createKernel({ search: false, host: 'daemon', env: { KOTO_HOME: home() }, logLevel: 'silent', config: OPENAI_ONLY });
    expect(kernel.plugins().map((p) => p.name)).toEqual(['feedback', 'focus', 'hotkey', 'mic-native', 'openai-compatible', 'outputs']);
  });

  it('a reload that starts using a built-in loads and applies it: no restart needed', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify({ ...OPENAI_ONLY, output: ['stdout'] }), { mode: 0o600 });
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent' });
    expect(kernel.plugins().map((p) => p.name)).not.toContain('local-correction');

    // The control panel's check of an edit validates with the plugin it would need, applying nothing.
    const edit = {
      ...OPENAI_ONLY,
      providers: { ...OPENAI_ONLY.providers, tidy: { use: 'local-correction' } },
      correction: { provider: 'tidy' },
    };
    await expect(kernel.checkConfig(edit)).resolves.toMatchObject({ resolved: { correctionProvider: 'tidy' } });
    expect(kernel.plugins().map((p) => p.name)).not.toContain('local-correction');

    writeFileSync(file, JSON.stringify(edit));
    const outcome = await kernel.reload();
    expect(outcome.error?.message).toBeUndefined();
    expect(outcome.ok).toBe(true);
    expect(kernel.restartNeeded).toEqual([]);
    expect(kernel.plugins().map((p) => p.name)).toContain('local-correction');
    const result = await kernel.correct('hello comma world period');
    expect(result).toMatchObject({ text: 'Hello, world.', fallback: false });

    // Back and forth: the plugin stays loaded, nothing is applied twice.
    writeFileSync(file, JSON.stringify(OPENAI_ONLY));
    expect((await kernel.reload()).ok).toBe(true);
    writeFileSync(file, JSON.stringify(edit));
    expect((await kernel.reload()).ok).toBe(true);
    expect(kernel.plugins().filter((p) => p.name === 'local-correction')).toHaveLength(1);
    expect(kernel.plugins().find((p) => p.name === 'local-correction')?.taps).toEqual(['correction:local-correction']);
  });

  it('checking an edit never runs a plugin file it names (only a reload of the saved file does)', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify(OPENAI_ONLY), { mode: 0o600 });
    const marker = path.join(dir, 'ran.txt');
    writeFileSync(
      path.join(dir, 'probe.mjs'),
      `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default { name: 'probe', capabilities: ['asr'], apply() {} };\n`,
    );
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent' });
    const edit = { ...OPENAI_ONLY, providers: { ...OPENAI_ONLY.providers, p: { use: './probe.mjs' } } };
    await expect(kernel.checkConfig(edit)).rejects.toMatchObject({ code: 'KOTO_ERR_CONFIG_INVALID' });
    expect(existsSync(marker)).toBe(false);
    writeFileSync(file, JSON.stringify(edit));
    expect((await kernel.reload()).ok).toBe(true);
    expect(existsSync(marker)).toBe(true);
    expect(kernel.plugins().map((p) => p.name)).toContain('probe');
  });

  it('a reload naming a plugin that does not exist is refused and keeps the old config', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify(OPENAI_ONLY), { mode: 0o600 });
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent' });
    writeFileSync(file, JSON.stringify({ ...OPENAI_ONLY, providers: { ...OPENAI_ONLY.providers, x: { use: 'no-such-plugin-here' } } }));
    const outcome = await kernel.reload();
    expect(outcome.ok).toBe(false);
    expect(outcome.error?.code).toBe('KOTO_ERR_PLUGIN_NOT_FOUND');
    expect(kernel.lastConfigError?.code).toBe('KOTO_ERR_PLUGIN_NOT_FOUND');
    expect(Object.keys(kernel.config.resolved.providers)).toEqual(['main']);
    rmSync(file);
  });
});
