/**
 * The loop a person lives in (issue #16): key down → recording, key up → text delivered, through
 * a real `koto daemon` (built dist/), the virtual microphone (test/support/virtual-mic.sh) and a
 * loopback OpenAI-compatible server that answers each request after `--think` ms.
 *
 *   npm run build && npm run bench:loop -- [--n 15] [--think 300] [--hold 800] [--pre-roll 0] [--json] [--out f.json]
 *
 * Part 1, start-up (median wall time of a whole process, runs interleaved):
 *   node -e 0 (the floor) · `koto status` (fast client) · the same through the full CLI (what
 *   every control command cost before) · `koto --help`
 *
 * Part 2, the loop, one trigger after another in rotation so all see the same machine:
 *   signal     `kill -USR2` (the floor: no process, no socket)
 *   hotkey     the daemon's own X11 grab, key pressed with `xdotool keydown/keyup` under Xvfb
 *   fast-cli   `koto start` / `koto stop`
 *   full-cli   the same commands through the full CLI (commander, zod, the kernel's modules)
 * Measured from the moment the bench pulls the trigger: until the daemon's recording started
 * (`koto status` lastStart.startedAt), until its first captured sample (negative with a
 * pre-roll: audio from before the key), and from the release until the text is in the file output.
 * Needs pulseaudio-utils (virtual mic) and, for the hotkey, Xvfb + xdotool: `bash scripts/system-deps.sh audio desktop`.
 */
import './lib/source.ts';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { sendCommand } from '../src/daemon/client.ts';
import type { DaemonStatus } from '../src/daemon/daemon.ts';
import { startOpenAIServer } from '../src/testing/openai-server.ts';
import { machineInfo, machineLine } from './lib/machine.ts';
import { round, roundSummary, sleep, summarize, type Summary } from './lib/stats.ts';
import { startXvfb } from './lib/xvfb.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'koto.js');
const FULL_CLI = `import(${JSON.stringify(path.join(ROOT, 'dist/src/cli/main.js'))}).then((m) => m.main(process.argv.slice(1)))`;
const COMBO = 'ctrl+alt+space';

const { values: flags } = parseArgs({
  options: {
    n: { type: 'string', default: '15' },
    think: { type: 'string', default: '300' },
    hold: { type: 'string', default: '800' },
    'pre-roll': { type: 'string', default: '0' },
    'startup-n': { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const N = Number(flags.n);
const HOLD_MS = Number(flags.hold);
const log = (line: string) => process.stderr.write(`${line}\n`);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

const epoch = () => performance.timeOrigin + performance.now();

async function startup(env: NodeJS.ProcessEnv): Promise<Record<string, Summary>> {
  const variants: Record<string, string[]> = {
    'node -e 0': ['-e', '0'],
    'koto status (fast client)': [BIN, 'status'],
    'koto status (full CLI)': ['-e', FULL_CLI, 'status'],
    'koto --help': [BIN, '--help'],
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = 0; i < Number(flags['startup-n']); i += 1) {
    for (const [name, args] of Object.entries(variants)) {
      const t0 = performance.now();
      await run(process.execPath, args, env);
      samples[name]!.push(performance.now() - t0);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, roundSummary(summarize(v), 1)]));
}

async function main(): Promise<void> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'koto-bench-loop-'));
  const server = await startOpenAIServer({
    thinkMs: Number(flags.think),
    transcribe: () => 'hello from the bench',
    complete: () => 'Hello from the bench.',
  });
  writeFileSync(path.join(home, 'ca.pem'), server.ca);
  execFileSync('bash', [path.join(ROOT, 'test/support/virtual-mic.sh'), 'start'], { stdio: 'ignore' });
  const pulse = Object.fromEntries(
    [
      ...execFileSync('bash', [path.join(ROOT, 'test/support/virtual-mic.sh'), 'env'], { encoding: 'utf8' }).matchAll(
        /^export (\w+)=(.*)$/gm,
      ),
    ].map((m) => [m[1]!, m[2]!]),
  );
  const xvfb = await startXvfb().catch((err: Error) => (log(`no hotkey trigger: ${err.message}`), undefined));
  // `xdotool version` needs a display too.
  const hasXdotool =
    xvfb !== undefined && (await run('xdotool', ['version'], { ...process.env, DISPLAY: xvfb.display }).catch(() => 1)) === 0;
  const output = path.join(home, 'dictations.txt');
  writeFileSync(
    path.join(home, 'config.yaml'),
    [
      'providers:',
      '  main: { use: openai-compatible, baseUrl: ' + server.baseUrl + ', apiKey: sk-bench-loop-0000 }',
      'asr: { model: whisper-1 }',
      'correction: { model: gpt-test, stream: false }',
      `audio: { source: mic-native, preRollMs: ${Number(flags['pre-roll'])} }`,
      // The virtual microphone is all zeros when nothing plays: not an error for this bench.
      'pluginOptions: { mic-native: { silenceMs: 0 } }',
      ...(hasXdotool ? [`hotkey: { keys: ${COMBO}, mode: hold, backend: x11 }`] : []),
      'output:',
      `  - { use: file, path: ${output} }`,
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    KOTO_HOME: home,
    NODE_EXTRA_CA_CERTS: path.join(home, 'ca.pem'),
    ...(xvfb ? { DISPLAY: xvfb.display } : {}),
    ...pulse,
  };
  const socket = path.join(home, 'run', 'koto.sock');
  const daemon = spawn(process.execPath, [BIN, 'daemon'], { env, stdio: 'ignore' });
  const status = () => sendCommand(socket, 'status', {}, 10_000) as Promise<DaemonStatus>;
  try {
    for (let i = 0; ; i += 1) {
      const s = await status().catch(() => undefined);
      if (s && (!hasXdotool || s.plugins.hotkey?.active)) break;
      if (i > 400) throw new Error('the daemon did not come up (or did not grab the hotkey)');
      await sleep(50);
    }
    log('start-up …');
    const start = await startup(env);

    type Trigger = { down: () => Promise<unknown>; up: () => Promise<unknown> };
    const triggers: Record<string, Trigger> = {
      signal: { down: async () => daemon.kill('SIGUSR2'), up: async () => daemon.kill('SIGUSR2') },
      ...(hasXdotool
        ? {
            hotkey: {
              down: () => run('xdotool', ['keydown', COMBO], env),
              up: () => run('xdotool', ['keyup', COMBO], env),
            },
          }
        : {}),
      'fast-cli': { down: () => run(process.execPath, [BIN, 'start'], env), up: () => run(process.execPath, [BIN, 'stop'], env) },
      'full-cli': {
        down: () => run(process.execPath, ['-e', FULL_CLI, 'start'], env),
        up: () => run(process.execPath, ['-e', FULL_CLI, 'stop'], env),
      },
    };
    const loop: Record<string, { start: number[]; audio: number[]; text: number[] }> = Object.fromEntries(
      Object.keys(triggers).map((k) => [k, { start: [], audio: [], text: [] }]),
    );
    let delivered = 0;
    for (let round_ = 0; round_ < N; round_ += 1) {
      for (const [name, trigger] of Object.entries(triggers)) {
        const before = (await status()).audio.lastStart?.id;
        const t0 = epoch();
        void trigger.down();
        let s: DaemonStatus;
        for (;;) {
          s = await status();
          if (s.state === 'recording' && s.audio.lastStart && s.audio.lastStart.id !== before) break;
          await sleep(2);
        }
        const last = s.audio.lastStart!;
        loop[name]!.start.push(last.startedAt - t0);
        if (last.keyToAudioMs !== undefined && last.keyToStartMs !== undefined) {
          loop[name]!.audio.push(last.startedAt - last.keyToStartMs + last.keyToAudioMs - t0);
        }
        await sleep(HOLD_MS);
        const t1 = epoch();
        await trigger.up();
        for (;;) {
          const lines = existsSync(output) ? readFileSync(output, 'utf8').split('\n').filter(Boolean).length : 0;
          if (lines > delivered) {
            delivered = lines;
            break;
          }
          await sleep(1);
        }
        loop[name]!.text.push(epoch() - t1);
        // Let the session finish everything (history) before the next trigger.
        while ((await status()).state !== 'idle') await sleep(5);
        await sleep(200);
      }
      log(`round ${round_ + 1}/${N}`);
    }
    const floor = summarize(loop.signal!.text).p50;
    const result = {
      machine: machineInfo(),
      options: { n: N, thinkMs: Number(flags.think), holdMs: HOLD_MS, preRollMs: Number(flags['pre-roll']) },
      startup: start,
      loop: Object.fromEntries(
        Object.entries(loop).map(([k, v]) => [
          k,
          {
            start: roundSummary(summarize(v.start), 1),
            firstAudio: roundSummary(summarize(v.audio), 1),
            text: roundSummary(summarize(v.text), 1),
            textVsSignal: round(summarize(v.text).p50 / floor, 2),
            samples: v,
          },
        ]),
      ),
    };
    if (flags.out) writeFileSync(flags.out, `${JSON.stringify(result, null, 2)}\n`);
    if (flags.json) return void process.stdout.write(`${JSON.stringify(result)}\n`);
    const floorStart = start['node -e 0']!.p50;
    const lines = [
      `# Hotkey loop (${machineLine(result.machine)})`,
      '',
      `Start-up, median of ${flags['startup-n']} runs each, interleaved:`,
      '',
      '| command | P50 ms | × node -e 0 |',
      '|---|---:|---:|',
      ...Object.entries(start).map(([k, v]) => `| ${k} | ${v.p50} | ${round(v.p50 / floorStart, 2)} |`),
      '',
      `The loop, ${N} rounds, ${HOLD_MS} ms held, server think time ${flags.think} ms (ASR and correction each), pre-roll ${flags['pre-roll']} ms:`,
      '',
      '| trigger | → recording P50 / P95 ms | → first audio P50 ms | release → text P50 / P95 ms | release → text × signal |',
      '|---|---:|---:|---:|---:|',
      ...Object.entries(result.loop).map(
        ([k, v]) => `| ${k} | ${v.start.p50} / ${v.start.p95} | ${v.firstAudio.p50} | ${v.text.p50} / ${v.text.p95} | ${v.textVsSignal} |`,
      ),
      '',
    ];
    process.stdout.write(lines.join('\n'));
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    await xvfb?.stop();
    await server.close();
    rmSync(home, { recursive: true, force: true });
  }
}

await main();
