/**
 * Footprint: start-up time of `koto --version` and `koto --help`, and the memory of an idle
 * daemon and of an idle kernel process, each next to its target (issue #19: lean start).
 *
 *   npm run build && npm run bench:footprint -- [--n 20] [--settle 3000] [--json] [--out file.json]
 *
 * Both run the compiled `dist/` (what ships), with the Node that runs this script.
 *   start-up     wall time from spawn to exit of `node bin/koto.js --version`, of `--help` and of
 *                `node -e 0` (Node's own floor), interleaved (one of each per round, so all three
 *                see the same machine), N rounds after two warm-up rounds (file cache warm);
 *                the ratio of the medians to the floor. Target: `--help` ≤ 2.5 × `node -e 0`
 *   idle daemon  `node bin/koto.js daemon` (foreground, temporary KOTO_HOME), once with no config
 *                file and once with an OpenAI-only config file (a fake key, a loopback base URL
 *                nothing listens on: idling needs no network), `--settle` ms after it says it is
 *                listening: RSS from /proc (median of 5 samples 200 ms apart), then SIGTERM.
 *                Target: ≤ 60 MiB with the OpenAI-only config
 *   idle kernel  a process that creates a kernel with the built-in plugins (no config file, a
 *                temporary KOTO_HOME) and then does nothing; its RSS and heap, sampled the same
 *                way, next to a bare `node` process that waits the same way
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { machineInfo, machineLine, type MachineInfo } from './lib/machine.ts';
import { roundSummary, summarize, type Summary } from './lib/stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(root, 'bin', 'koto.js');
const DIST_INDEX = path.join(root, 'dist', 'src', 'index.js');

export interface FootprintOptions {
  n: number;
  settleMs: number;
  log?: (line: string) => void;
}

export interface Memory {
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

export interface FootprintResult {
  readonly bench: 'footprint';
  readonly options: Omit<FootprintOptions, 'log'>;
  readonly machine: MachineInfo;
  readonly startedAt: string;
  readonly version: string;
  readonly startup: { koto: Summary; help: Summary; node: Summary; helpRatio: number; versionRatio: number };
  readonly idle: {
    daemon: { rssMiB: number } | { error: string };
    daemonOpenAI: { rssMiB: number } | { error: string };
    kernel: Memory & { plugins: string[] };
    node: Memory;
  };
  readonly targets: { helpRatio: number; daemonOpenAIRssMiB: number };
}

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t;
      if (code !== 0) reject(new Error(`${args.join(' ')} exited with ${code}: ${stderr.slice(0, 2000)}`));
      else resolve({ ms, stdout, code });
    });
  });
}

/** Code of a child process that (optionally) creates a kernel, settles, and prints its memory. */
function idleScript(withKernel: boolean, settleMs: number, home: string): string {
  return `
    const mib = (x) => Math.round((x / 1048576) * 10) / 10;
    let plugins = [];
    ${
      withKernel
        ? `const { createKernel } = await import(${JSON.stringify(pathToFileURL(DIST_INDEX).href)});
    const kernel = await createKernel({ search: false, builtins: true, env: { KOTO_HOME: ${JSON.stringify(home)} }, logLevel: 'error', config: {} });
    plugins = kernel.plugins().map((p) => p.name);`
        : ''
    }
    await new Promise((r) => setTimeout(r, ${settleMs}));
    const samples = [];
    for (let i = 0; i < 5; i++) { samples.push(process.memoryUsage()); await new Promise((r) => setTimeout(r, 200)); }
    const median = (k) => samples.map((s) => s[k]).sort((a, b) => a - b)[2];
    process.stdout.write(JSON.stringify({ rssMiB: mib(median('rss')), heapUsedMiB: mib(median('heapUsed')), heapTotalMiB: mib(median('heapTotal')), externalMiB: mib(median('external')), plugins }));
    ${withKernel ? 'await kernel.close();' : ''}
  `;
}

/** Resident set size of a process, MiB (Linux /proc; `ps` elsewhere). */
async function rssOf(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
    if (Number.isFinite(kb)) return Math.round((kb / 1024) * 10) / 10;
  } catch {
    // not Linux
  }
  const out = await new Promise<string>((resolve, reject) => {
    const ps = spawn('ps', ['-o', 'rss=', '-p', String(pid)]);
    let text = '';
    ps.stdout.on('data', (c: Buffer) => (text += c.toString()));
    ps.on('error', reject);
    ps.on('close', () => resolve(text));
  });
  return Math.round((Number(out.trim()) / 1024) * 10) / 10;
}

export const TARGETS = { helpRatio: 2.5, daemonOpenAIRssMiB: 60 } as const;

/** What docs/daemon.md's systemd unit and launchd agent set for the daemon. */
const UNIT_NODE_OPTIONS = '--max-semi-space-size=2';

/** An OpenAI-only config: a fake key and a loopback base URL nothing listens on (an idle daemon sends nothing). */
const OPENAI_ONLY_CONFIG = `providers:
  openai:
    use: openai-compatible
    baseUrl: http://127.0.0.1:9/v1
    apiKey: sk-footprint-bench-not-a-key
asr:
  provider: openai
correction:
  provider: openai
`;

/** Starts `koto daemon` in the foreground, waits until it listens, settles, samples its RSS, stops it. */
async function idleDaemon(settleMs: number, home: string, env: NodeJS.ProcessEnv, config?: string): Promise<{ rssMiB: number }> {
  const child = spawn(process.execPath, [BIN, ...(config ? ['--config', config] : []), 'daemon'], {
    cwd: home,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = once(child, 'exit');
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the daemon did not start within 20 s: ${output.slice(0, 2000)}`)), 20_000);
      const onData = (c: Buffer) => {
        output += c.toString();
        if (/daemon listening/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the daemon exited (${code}) before listening: ${output.slice(0, 2000)}`));
      });
    });
    await new Promise((r) => setTimeout(r, settleMs));
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      samples.push(await rssOf(child.pid!));
      await new Promise((r) => setTimeout(r, 200));
    }
    return { rssMiB: samples.sort((a, b) => a - b)[2]! };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export async function runFootprintBench(options: FootprintOptions): Promise<FootprintResult> {
  const log = options.log ?? (() => undefined);
  if (!existsSync(path.join(root, 'dist', 'src', 'cli', 'main.js')) || !existsSync(DIST_INDEX)) {
    throw new Error('dist/ is missing: run `npm run build` first');
  }
  const startedAt = new Date().toISOString();
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-bench-footprint-'));
  const env = { ...process.env, KOTO_HOME: home, NO_COLOR: '1' };
  try {
    const version = (await run([BIN, '--version'], env)).stdout.trim();
    const koto: number[] = [];
    const help: number[] = [];
    const node: number[] = [];
    for (let i = 0; i < 2; i++) {
      await run([BIN, '--version'], env);
      await run([BIN, '--help'], env);
      await run(['-e', '0'], env);
    }
    log(`footprint: ${options.n} rounds of node -e 0, koto --version, koto --help`);
    for (let i = 0; i < options.n; i++) {
      node.push((await run(['-e', '0'], env)).ms);
      koto.push((await run([BIN, '--version'], env)).ms);
      help.push((await run([BIN, '--help'], env)).ms);
    }
    log('footprint: idle daemon');
    const daemonHome = await mkdtemp(path.join(home, 'daemon-'));
    const daemon = await idleDaemon(options.settleMs, daemonHome, { ...env, KOTO_HOME: daemonHome }).catch((err: unknown) => ({
      error: err instanceof Error ? err.message : String(err),
    }));
    log('footprint: idle daemon, OpenAI-only config');
    const openaiHome = await mkdtemp(path.join(home, 'daemon-openai-'));
    const configFile = path.join(openaiHome, 'config.yaml');
    await writeFile(configFile, OPENAI_ONLY_CONFIG, { mode: 0o600 });
    // Run as the documented systemd unit runs it (docs/daemon.md): a 2 MiB young generation.
    const daemonOpenAI = await idleDaemon(
      options.settleMs,
      openaiHome,
      { ...env, KOTO_HOME: openaiHome, NODE_OPTIONS: UNIT_NODE_OPTIONS },
      configFile,
    ).catch((err: unknown) => ({
      error: err instanceof Error ? err.message : String(err),
    }));
    log('footprint: idle kernel process');
    const kernel = JSON.parse(
      (await run(['--input-type=module', '-e', idleScript(true, options.settleMs, home)], env)).stdout,
    ) as Memory & { plugins: string[] };
    const bare = JSON.parse((await run(['--input-type=module', '-e', idleScript(false, options.settleMs, home)], env)).stdout) as Memory;
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
    return {
      bench: 'footprint',
      options: { n: options.n, settleMs: options.settleMs },
      machine: machineInfo(),
      startedAt,
      version: version || pkg.version,
      startup: {
        koto: roundSummary(summarize(koto), 1),
        help: roundSummary(summarize(help), 1),
        node: roundSummary(summarize(node), 1),
        helpRatio: Math.round((summarize(help).p50 / summarize(node).p50) * 100) / 100,
        versionRatio: Math.round((summarize(koto).p50 / summarize(node).p50) * 100) / 100,
      },
      idle: { daemon, daemonOpenAI, kernel, node: bare },
      targets: { ...TARGETS },
    };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

export function formatFootprint(r: FootprintResult): string {
  const f = (x: number) => x.toFixed(0);
  const k = r.startup.koto;
  const h = r.startup.help;
  const n = r.startup.node;
  const met = (ok: boolean) => (ok ? 'met' : '**not met**');
  const daemonRow = (label: string, d: { rssMiB: number } | { error: string }, target?: number) =>
    'rssMiB' in d
      ? `| ${label} | ${d.rssMiB.toFixed(1)} | — | — | ${target === undefined ? '—' : `≤ ${target}: ${met(d.rssMiB <= target)}`} |`
      : `| ${label}: not measured (${d.error.split('\n')[0]}) | — | — | — | — |`;
  const m = (x: Memory) => `${x.rssMiB.toFixed(1)} | ${x.heapUsedMiB.toFixed(1)} | ${x.externalMiB.toFixed(1)}`;
  return [
    `# Footprint (koto ${r.version})`,
    '',
    `Machine: ${machineLine(r.machine)}.`,
    '',
    `Start-up, ${r.options.n} interleaved rounds, ms from spawn to exit (ratio: P50 over \`node -e 0\`'s P50):`,
    '',
    '| command | avg | P50 | P90 | max | ratio | target |',
    '|---|---:|---:|---:|---:|---:|---|',
    `| \`node -e 0\` (Node's own floor) | ${f(n.avg)} | ${f(n.p50)} | ${f(n.p90)} | ${f(n.max)} | 1.00 | — |`,
    `| \`node bin/koto.js --version\` | ${f(k.avg)} | ${f(k.p50)} | ${f(k.p90)} | ${f(k.max)} | ${r.startup.versionRatio.toFixed(2)} | — |`,
    `| \`node bin/koto.js --help\` | ${f(h.avg)} | ${f(h.p50)} | ${f(h.p90)} | ${f(h.max)} | ${r.startup.helpRatio.toFixed(2)} | ≤ ${r.targets.helpRatio}: ${met(r.startup.helpRatio <= r.targets.helpRatio)} |`,
    '',
    `Idle processes, ${r.options.settleMs} ms after start-up (MiB):`,
    '',
    '| process | RSS | heap used | external | target |',
    '|---|---:|---:|---:|---|',
    daemonRow('idle daemon, `koto daemon` (no config file: every default provider plugin)', r.idle.daemon),
    daemonRow(
      `idle daemon, \`koto daemon\` with an OpenAI-only config file, as the documented unit runs it (NODE_OPTIONS=${UNIT_NODE_OPTIONS})`,
      r.idle.daemonOpenAI,
      r.targets.daemonOpenAIRssMiB,
    ),
    `| idle kernel, no config file (loads ${r.idle.kernel.plugins.join(', ')}) | ${m(r.idle.kernel)} | — |`,
    `| bare \`node\` waiting | ${m(r.idle.node)} | — |`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '20' },
      settle: { type: 'string', default: '3000' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
    strict: true,
  });
  const result = await runFootprintBench({
    n: Number(values.n),
    settleMs: Number(values.settle),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  if (values.out) await writeFile(values.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatFootprint(result)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:footprint failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
