/**
 * Secrets and transport security (issue 11).
 *
 * - A canary API key (and a secret header and a secret query parameter) used across a broad run
 *   — in-process sessions hitting every kind of failure with debug logs captured, the real `koto`
 *   bin (standalone runs, `--debug`, `config print`, a `koto daemon` subprocess with its log
 *   file, `status --json`, `history --json`, delegated runs, a failed reload) — is never found in
 *   stdout, stderr, logs, the log file, history or error messages.
 * - Endpoints must be https: plain http to a non-loopback host is refused (config and
 *   transport); loopback http is allowed.
 * - A redirect to another origin is refused and the credential never reaches that origin.
 * - The control socket is 0600; a config file holding a key and readable by others warns.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, KotoError } from '../../src/index.ts';
import { BIN, koto, type CliResult } from '../cli/support.ts';
import { startOpenAIServer, type OpenAIServer } from '../support/index.ts';
import {
  CANARY,
  everythingShown,
  expectDelivered,
  expectFailedKept,
  expectFallback,
  requestsTo,
  rig,
  settle,
  sleep,
  tempDir,
  waitFor,
  WAV,
  type Rig,
} from './support.ts';

/** A secret sent as a header value (`providers.<name>.headers`). */
const HEADER_CANARY = 'hdr-canary-5Rk8WnT2qY7v';
/** A secret query parameter, with characters that URL-encoding changes. */
const QUERY_CANARY = 'q+canary/3Jd9=Lx';
const SECRETS = [CANARY, HEADER_CANARY, QUERY_CANARY, encodeURIComponent(QUERY_CANARY)];

const ASR = '/audio/transcriptions';
const CHAT = '/chat/completions';

function expectClean(text: string, where: string): void {
  for (const secret of SECRETS) {
    if (text.includes(secret)) {
      const at = text.indexOf(secret);
      throw new Error(`a secret leaked into ${where}: …${text.slice(Math.max(0, at - 120), at + secret.length + 40)}…`);
    }
  }
}

/** Every file under a folder, as bytes decoded latin1 (SQLite pages, WAL, logs, recordings). */
function filesUnder(dir: string): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push({ file: full, text: readFileSync(full).toString('latin1') });
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** An upstream error body that echoes every credential back, like a careless gateway. */
function echoingBody(status: number) {
  return {
    error: {
      message: `denied: Authorization: Bearer ${CANARY}; x-api-key: ${HEADER_CANARY}; url: /v1/audio/transcriptions?api-key=${encodeURIComponent(QUERY_CANARY)} (raw ${QUERY_CANARY})`,
      type: status >= 500 ? 'server_error' : 'invalid_request_error',
      code: `key_${CANARY}`,
    },
  };
}

describe('the canary never shows: in-process sessions through every kind of failure', () => {
  let r: Rig;
  const shown: string[] = [];

  beforeAll(async () => {
    r = await rig({
      config: (s) => ({
        providers: {
          main: {
            use: 'openai-compatible',
            baseUrl: s.baseUrl,
            apiKey: CANARY,
            headers: { 'X-Api-Key': HEADER_CANARY },
            query: { 'api-key': QUERY_CANARY },
          },
        },
        asr: { retries: 1 },
        transport: { headersTimeoutMs: 300, bodyTimeoutMs: 300 },
      }),
    });
  });
  afterAll(async () => {
    await r.close();
  });

  const faults: [string, () => void, 'done' | 'fallback' | 'failed'][] = [
    ['401 echoing the key', () => r.server.inject({ path: ASR, status: 401, body: echoingBody(401) }), 'failed'],
    ['403', () => r.server.inject({ path: ASR, status: 403 }), 'failed'],
    ['400 echoing every credential', () => r.server.inject({ path: ASR, status: 400, body: echoingBody(400) }), 'failed'],
    ['404', () => r.server.inject({ path: ASR, status: 404 }), 'failed'],
    ['429', () => r.server.inject({ path: ASR, status: 429, body: echoingBody(429), headers: { 'retry-after': '60' } }), 'failed'],
    ['500 echoing', () => r.server.inject({ path: ASR, status: 500, body: echoingBody(500), times: Infinity }), 'failed'],
    [
      'plain-text 502 echoing',
      () => r.server.inject({ path: ASR, status: 502, body: `Bad gateway for Bearer ${CANARY}`, times: Infinity }),
      'failed',
    ],
    ['reset', () => r.server.inject({ path: ASR, reset: 'before-response', times: Infinity }), 'failed'],
    ['reset mid-body', () => r.server.inject({ path: ASR, reset: 'during-response', times: Infinity }), 'failed'],
    ['slow headers', () => r.server.inject({ path: ASR, delayMs: 1500, times: Infinity }), 'failed'],
    ['truncated', () => r.server.inject({ path: ASR, truncateJson: true }), 'failed'],
    ['correction 401 echoing', () => r.server.inject({ path: CHAT, status: 401, body: echoingBody(401) }), 'fallback'],
    ['correction 400 echoing', () => r.server.inject({ path: CHAT, status: 400, body: echoingBody(400) }), 'fallback'],
    [
      'correction stream error echoing',
      () =>
        r.server.inject({
          path: CHAT,
          body: `data: ${JSON.stringify(echoingBody(200))}\n\n`,
          headers: { 'content-type': 'text/event-stream' },
          times: Infinity,
        }),
      'fallback',
    ],
    ['correction malformed SSE', () => r.server.inject({ path: CHAT, sseMalformed: true }), 'fallback'],
    ['pre-warm 401 echoing', () => r.server.inject({ path: '/models', status: 401, body: echoingBody(401) }), 'done'],
    ['no fault', () => undefined, 'done'],
  ];

  for (const [name, inject, expected] of faults) {
    it(`${name}: ${expected}, nothing secret in the result, the error or the logs`, async () => {
      r.server.clearFaults();
      inject();
      const outcome = await r.run();
      r.server.clearFaults();
      expect(outcome.kind).toBe(expected);
      shown.push(JSON.stringify(outcome.record));
      if (outcome.kind === 'failed') shown.push(everythingShown(outcome.error), outcome.error.toLine(), JSON.stringify(outcome.error));
      // The request did carry the credentials: the scrubbing is what keeps them out of sight.
      expect(r.server.requests.at(-1)?.headers['x-api-key']).toBe(HEADER_CANARY);
    });
  }

  it('rewrite, transcribe and correct calls too; then: no secret in any record, error, log line or history byte', async () => {
    r.server.inject({ path: CHAT, status: 400, body: echoingBody(400) });
    shown.push(JSON.stringify(await r.kernel.correct('some words')));
    r.server.inject({ path: ASR, status: 401, body: echoingBody(401) });
    const err = await r.kernel.transcribe({ data: WAV, name: 'a.wav' }).catch((e: unknown) => e);
    expect(KotoError.is(err)).toBe(true);
    shown.push(everythingShown(err));
    shown.push(JSON.stringify(await r.kernel.probe('main')));
    shown.push(JSON.stringify(r.kernel.diagnostics()));

    expect(r.logs.length).toBeGreaterThan(3);
    expectClean(r.logText(), 'the debug log');
    for (const [i, text] of shown.entries()) expectClean(text, `shown[${i}]`);
    for (const { file, text } of filesUnder(r.home)) expectClean(text, file);
  });
});

// ---------------------------------------------------------------------------
// The real `koto` bin: standalone, --debug, config print, a daemon subprocess
// ---------------------------------------------------------------------------

// Dozens of CLI processes: minutes on a loaded 2-core machine. The timeouts are hang guards.
describe('the canary never shows: the koto CLI and daemon (subprocesses)', { timeout: 600_000 }, () => {
  let server: OpenAIServer;
  let home: string;
  let caFile: string;
  const outputs: { what: string; result: CliResult }[] = [];
  let daemon: ChildProcess | undefined;
  let daemonOut = '';

  const configText = (extra = '') =>
    [
      'providers:',
      '  main:',
      '    use: openai-compatible',
      `    baseUrl: ${server.baseUrl}`,
      `    apiKey: ${CANARY}`,
      '    headers:',
      `      X-Api-Key: ${HEADER_CANARY}`,
      '    query:',
      `      api-key: ${JSON.stringify(QUERY_CANARY)}`,
      'asr:',
      '  model: whisper-1',
      '  retries: 1',
      'correction:',
      '  model: gpt-4.1-mini',
      'audio:',
      '  source: no-such-source',
      'output:',
      '  - use: file',
      '    path: ./out.txt',
      'transport:',
      // Answers that come must beat these on a loaded machine; the slow one never comes.
      '  headersTimeoutMs: 3000',
      '  bodyTimeoutMs: 3000',
      extra,
      '',
    ].join('\n');

  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
    const out: NodeJS.ProcessEnv = { KOTO_HOME: home, NODE_EXTRA_CA_CERTS: caFile, ...extra };
    if (out.NODE_EXTRA_CA_CERTS === '') delete out.NODE_EXTRA_CA_CERTS;
    return out;
  };

  async function cli(what: string, args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    const result = await koto(args, { cwd: home, env: env(extra), timeoutMs: 90_000 });
    outputs.push({ what, result });
    expectClean(result.stdout, `stdout of ${what}`);
    expectClean(result.stderr, `stderr of ${what}`);
    return result;
  }

  /** One `koto:` error line per failure: `… (KOTO_ERR_X)`. */
  function errorLine(result: CliResult, code: string): string {
    const line = result.stderr.split('\n').find((l) => l.includes(`(${code})`));
    expect(line, result.stderr).toBeDefined();
    return line!;
  }

  beforeAll(async () => {
    server = await startOpenAIServer({ apiKey: CANARY });
    home = tempDir('koto-secrets-cli-');
    caFile = path.join(home, 'ca.pem');
    writeFileSync(caFile, server.ca);
    writeFileSync(path.join(home, 'config.yaml'), configText(), { mode: 0o600 });
    writeFileSync(path.join(home, 'clip.wav'), WAV);
  });

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    await server.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('standalone runs with --debug: success, and every kind of failure, each one line with its code', async () => {
    const clip = path.join(home, 'clip.wav');
    const ok = await cli('run ok', ['--debug', '--no-daemon', 'run', clip]);
    expect(ok).toMatchObject({ code: 0, stdout: 'Hello, world.\n' });

    const cases: [string, () => void, string][] = [
      ['401', () => server.inject({ path: ASR, status: 401, body: echoingBody(401) }), 'KOTO_ERR_AUTH'],
      ['404', () => server.inject({ path: ASR, status: 404 }), 'KOTO_ERR_ENDPOINT_NOT_FOUND'],
      ['400 echo', () => server.inject({ path: ASR, status: 400, body: echoingBody(400) }), 'KOTO_ERR_BAD_REQUEST'],
      ['500 echo', () => server.inject({ path: ASR, status: 500, body: echoingBody(500), times: Infinity }), 'KOTO_ERR_UPSTREAM'],
      ['reset', () => server.inject({ path: ASR, reset: 'before-response', times: Infinity }), 'KOTO_ERR_NETWORK'],
      ['truncated', () => server.inject({ path: ASR, truncateJson: true }), 'KOTO_ERR_BAD_RESPONSE'],
      ['slow headers', () => server.inject({ path: ASR, delayMs: 60_000, times: Infinity }), 'KOTO_ERR_TIMEOUT'],
    ];
    for (const [what, inject, code] of cases) {
      server.clearFaults();
      inject();
      const result = await cli(`run ${what}`, ['--debug', '--no-daemon', 'run', '--json', clip]);
      server.clearFaults();
      expect(result.code, result.stderr).toBe(1);
      errorLine(result, code);
      expect(JSON.parse(result.stdout.trim())).toMatchObject({ error: { code } });
      expect(result.stderr).toMatch(/the recording is kept at /);
    }

    // A correction that fails: the raw text on stdout, the warning on stderr, exit 0.
    server.inject({ path: CHAT, status: 401, body: echoingBody(401) });
    const fallback = await cli('run correction 401', ['--debug', '--no-daemon', 'run', clip]);
    expect(fallback).toMatchObject({ code: 0, stdout: 'hello world\n' });
    expect(fallback.stderr).toMatch(/koto: warning: .*correction skipped, raw transcript delivered/);

    server.inject({ path: CHAT, status: 400, body: echoingBody(400) });
    expect(await cli('correct 400', ['--debug', '--no-daemon', 'correct', 'some', 'words'])).toMatchObject({
      code: 0,
      stdout: 'some words\n',
    });
    server.inject({ path: ASR, status: 401, body: echoingBody(401) });
    errorLine(await cli('transcribe 401', ['--debug', '--no-daemon', 'transcribe', clip]), 'KOTO_ERR_AUTH');

    // TLS failure: the test CA is not trusted without NODE_EXTRA_CA_CERTS.
    const tls = await cli('run untrusted TLS', ['--debug', '--no-daemon', 'run', clip], { NODE_EXTRA_CA_CERTS: '' });
    expect(errorLine(tls, 'KOTO_ERR_NETWORK')).toContain(`cannot reach ${server.origin}`);

    // koto doctor probes the provider with the key.
    server.inject({ path: '/models', status: 401, body: echoingBody(401), times: Infinity });
    await cli('doctor 401', ['--debug', '--no-daemon', 'doctor', '--json']);
    server.clearFaults();
    await cli('doctor', ['--debug', '--no-daemon', 'doctor']);
  });

  it('koto config print (YAML and --json) and config check redact the key', async () => {
    const yaml = await cli('config print', ['config', 'print']);
    expect(yaml.code).toBe(0);
    expect(yaml.stdout).toContain('[redacted]');
    expect(yaml.stdout).toContain(server.baseUrl);
    const json = await cli('config print --json', ['--debug', 'config', 'print', '--json']);
    const view = JSON.parse(json.stdout) as { providers: { main: { apiKey: string; headers: Record<string, string> } } };
    expect(view.providers.main.apiKey).toBe('[redacted]');
    expect(view.providers.main.headers['X-Api-Key']).toBe('[redacted]');
    expect((await cli('config check', ['config', 'check'])).code).toBe(0);
  });

  it('a key given through ${ENV} is scrubbed as well', async () => {
    const file = path.join(home, 'env.yaml');
    writeFileSync(file, configText().replace(`apiKey: ${CANARY}`, 'apiKey: ${KOTO_SECRET_TEST_KEY}'), { mode: 0o600 });
    server.inject({ path: ASR, status: 401, body: echoingBody(401) });
    const result = await cli('run env key 401', ['--debug', '--config', file, 'run', path.join(home, 'clip.wav')], {
      KOTO_SECRET_TEST_KEY: CANARY,
    });
    errorLine(result, 'KOTO_ERR_AUTH');
    const printed = await cli('config print env', ['--config', file, 'config', 'print', '--json'], { KOTO_SECRET_TEST_KEY: CANARY });
    expect(printed.code).toBe(0);
  });

  it('a koto daemon subprocess: socket 0600, status --json, delegated runs and failures, history, a failed reload, the log file — all clean', async () => {
    daemon = spawn(process.execPath, [BIN, '--debug', 'daemon'], {
      cwd: home,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemon.stdout!.on('data', (d: Buffer) => (daemonOut += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (daemonOut += d.toString()));
    const socket = path.join(home, 'run', 'koto.sock');
    await waitFor(() => existsSync(socket) && /daemon listening/.test(daemonOut), 'the daemon to listen', 60_000);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(socket)).mode & 0o777).toBe(0o700);

    const clip = path.join(home, 'clip.wav');
    expect(await cli('delegated run', ['run', clip])).toMatchObject({ code: 0, stdout: 'Hello, world.\n' });
    server.inject({ path: ASR, status: 401, body: echoingBody(401) });
    const failed = await cli('delegated run 401', ['--debug', 'run', clip]);
    errorLine(failed, 'KOTO_ERR_AUTH');
    server.inject({ path: ASR, status: 500, body: echoingBody(500), times: Infinity });
    errorLine(await cli('delegated run 500', ['run', '--json', clip]), 'KOTO_ERR_UPSTREAM');
    server.clearFaults();
    server.inject({ path: CHAT, status: 400, body: echoingBody(400) });
    expect((await cli('delegated run correction 400', ['run', clip])).stdout).toBe('hello world\n');
    server.inject({ path: CHAT, status: 400, body: echoingBody(400) });
    await cli('delegated correct', ['correct', 'hello']);
    // A recording session: this config names an audio source nobody serves.
    errorLine(await cli('start (no audio source)', ['start']), 'KOTO_ERR_AUDIO_SOURCE_UNKNOWN');

    const status = await cli('status --json', ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'idle', configGeneration: 1 });
    await cli('status', ['status']);

    const history = await cli('history --json', ['history', '--json', '-n', '50']);
    const rows = history.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; state: string; errorCode: string | null; audioPath: string | null });
    expect(rows.length).toBeGreaterThanOrEqual(3);
    const failedRow = rows.find((row) => row.errorCode === 'KOTO_ERR_UPSTREAM')!;
    expect(existsSync(failedRow.audioPath!)).toBe(true);
    // koto retry of the failed dictation, through the daemon, once the upstream is fine.
    expect(await cli('retry', ['retry', failedRow.id])).toMatchObject({ code: 0, stdout: 'Hello, world.\n' });

    // An invalid edit (the YAML error sits on the key's line): reported, the old config stays, nothing leaks.
    writeFileSync(path.join(home, 'config.yaml'), configText().replace(`    apiKey: ${CANARY}`, `    apiKey: ${CANARY}: [`), {
      mode: 0o600,
    });
    const reload = await cli('reload (invalid)', ['reload']);
    expect(reload.code).toBe(3);
    errorLine(reload, 'KOTO_ERR_CONFIG_PARSE');
    const after = JSON.parse((await cli('status after reload', ['status', '--json'])).stdout) as {
      lastConfigError: { code: string; message: string };
    };
    expect(after.lastConfigError.code).toBe('KOTO_ERR_CONFIG_PARSE');
    writeFileSync(path.join(home, 'config.yaml'), configText(), { mode: 0o600 });
    await cli('reload (fixed)', ['reload']);

    daemon.kill('SIGTERM');
    await new Promise<void>((resolve) => (daemon!.exitCode !== null ? resolve() : daemon!.once('exit', () => resolve())));
    expect(daemon.exitCode).toBe(0);
    expect(existsSync(socket)).toBe(false);

    expect(daemonOut).toMatch(/info session .* attempt 2 .*HTTP 500/);
    expectClean(daemonOut, "the daemon's stdout/stderr");
    const logFile = path.join(home, 'state', 'koto.log');
    expect(existsSync(logFile)).toBe(true);
    expect(statSync(logFile).mode & 0o077).toBe(0);
    const log = readFileSync(logFile, 'utf8');
    expect(log).toMatch(/attempt 2 .*failed \(HTTP 500\)/);
    expectClean(log, 'the log file');
  });

  it('after the whole run: no secret in any file Koto wrote under KOTO_HOME (history, WAL, logs, recordings)', () => {
    expect(outputs.length).toBeGreaterThan(20);
    const files = filesUnder(home).filter(({ file }) => !/\.(yaml|pem)$/.test(file) && !file.endsWith('clip.wav'));
    expect(files.some(({ file }) => file.endsWith('history.sqlite'))).toBe(true);
    for (const { file, text } of files) expectClean(text, file);
  });
});

// ---------------------------------------------------------------------------
// Config files: syntax errors near a key, permissions
// ---------------------------------------------------------------------------

describe('config files holding secrets', { timeout: 60_000 }, () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('koto-secrets-config-');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function kernelFor(file: string, env: NodeJS.ProcessEnv = {}) {
    const logs: string[] = [];
    const kernel = await createKernel({
      configPath: file,
      env: { KOTO_HOME: dir, ...env },
      builtins: ['openai-compatible'],
      logLevel: 'debug',
      logSink: (entry) => logs.push(`${entry.level} ${entry.message}`),
    });
    await kernel.close();
    return logs;
  }

  const yaml = (key: string) =>
    ['providers:', '  main:', '    use: openai-compatible', '    baseUrl: https://api.example.com/v1', `    apiKey: ${key}`, ''].join('\n');

  it('readable by others (0644) with a plain-text key: a warning naming the file and chmod 600, without the key', async () => {
    const file = path.join(dir, 'open.yaml');
    writeFileSync(file, yaml(CANARY));
    chmodSync(file, 0o644);
    const logs = await kernelFor(file);
    const warning = logs.find((l) => /readable by other users/.test(l));
    expect(warning).toMatch(new RegExp(`^warn .*${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} holds an API key .*mode 644.*chmod 600`));
    expectClean(logs.join('\n'), 'the warning');

    // The CLI shows it on stderr.
    const result = await koto(['--config', file, 'config', 'check'], { cwd: dir, env: { KOTO_HOME: dir } });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/holds an API key and is readable by other users \(mode 644\)/);
    expectClean(result.stderr + result.stdout, 'koto config check');
  });

  it('no warning at 0600, nor when the key comes from ${ENV}', async () => {
    const file = path.join(dir, 'private.yaml');
    writeFileSync(file, yaml(CANARY));
    chmodSync(file, 0o600);
    expect((await kernelFor(file)).some((l) => /readable by other users/.test(l))).toBe(false);
    const envFile = path.join(dir, 'env.yaml');
    writeFileSync(envFile, yaml('${KOTO_SECRET_TEST_KEY}'));
    chmodSync(envFile, 0o644);
    expect((await kernelFor(envFile, { KOTO_SECRET_TEST_KEY: CANARY })).some((l) => /readable by other users/.test(l))).toBe(false);
  });

  it("a YAML syntax error on the key's line names the line, not the key", async () => {
    const file = path.join(dir, 'broken.yaml');
    writeFileSync(file, yaml(`${CANARY}: [`), { mode: 0o600 });
    const err = await kernelFor(file).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'KOTO_ERR_CONFIG_PARSE' });
    expect((err as KotoError).message).toMatch(/broken\.yaml:\d+:\d+/);
    expectClean(everythingShown(err), 'the YAML parse error');
    const result = await koto(['--debug', '--config', file, 'config', 'check'], { cwd: dir, env: { KOTO_HOME: dir } });
    expect(result.code).toBe(3);
    expectClean(result.stderr + result.stdout, 'koto config check (broken YAML)');
  });

  it('a JSON syntax error right after the key does not quote the key', async () => {
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(
      file,
      `{"providers":{"main":{"use":"openai-compatible","baseUrl":"https://api.example.com/v1","apiKey":"${CANARY}" "x":1}}}`,
      { mode: 0o600 },
    );
    const err = await kernelFor(file).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'KOTO_ERR_CONFIG_PARSE' });
    expectClean(everythingShown(err), 'the JSON parse error');
    const result = await koto(['--debug', '--config', file, 'config', 'check'], { cwd: dir, env: { KOTO_HOME: dir } });
    expect(result.code).toBe(3);
    expectClean(result.stderr + result.stdout, 'koto config check (broken JSON)');
  });

  // BUG (src/kernel/config/source.ts, jsonLoader): V8's JSON.parse message for an unexpected
  // token quotes the source text after it (`Unexpected token 's', ..."apiKey": sk-koto-ca"... is
  // not valid JSON`), and the loader passes it through as `detail`. A key left unquoted — the
  // commonest JSON slip — has its first 10 characters printed; a short token is printed whole.
  // The key is never registered with the scrubber (the file did not parse), so nothing removes it.
  it('an unquoted key in a JSON config is not quoted back in the parse error', async () => {
    const token = 'tok-9Xq2Lw';
    const file = path.join(dir, 'unquoted', 'koto.config.json');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `{"providers":{"main":{"use":"openai-compatible","apiKey": ${token}}}}`, { mode: 0o600 });
    const err = await kernelFor(file).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'KOTO_ERR_CONFIG_PARSE' });
    expect(everythingShown(err)).not.toContain(token);
  });
});

// ---------------------------------------------------------------------------
// https only; loopback http allowed
// ---------------------------------------------------------------------------

/** A plain-http OpenAI-ish upstream on loopback (local servers: llama.cpp, vLLM, Ollama). */
async function plainHttpServer(): Promise<{
  url: string;
  requests: { path: string; authorization: string | undefined }[];
  close: () => Promise<void>;
}> {
  const requests: { path: string; authorization: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.includes('/audio/transcriptions')) res.end(JSON.stringify({ text: 'over plain loopback http' }));
      else if (req.url?.includes('/chat/completions')) {
        res.end(
          JSON.stringify({
            choices: [{ index: 0, message: { role: 'assistant', content: 'Over plain loopback HTTP.' }, finish_reason: 'stop' }],
          }),
        );
      } else res.end(JSON.stringify({ object: 'list', data: [] }));
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    requests,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

describe('https only, loopback http allowed', { timeout: 60_000 }, () => {
  it('a plain http baseUrl to a non-loopback host is a config error (exit 3), nothing is sent', async () => {
    const dir = tempDir('koto-secrets-http-');
    try {
      const file = path.join(dir, 'koto.yaml');
      writeFileSync(
        file,
        ['providers:', '  main:', '    use: openai-compatible', '    baseUrl: http://api.example.com/v1', `    apiKey: ${CANARY}`, ''].join(
          '\n',
        ),
        { mode: 0o600 },
      );
      const err = await createKernel({
        configPath: file,
        env: { KOTO_HOME: dir },
        builtins: ['openai-compatible'],
        logLevel: 'silent',
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'KOTO_ERR_CONFIG_INVALID' });
      expect((err as KotoError).message).toMatch(/baseUrl: plain http is only allowed for loopback hosts/);
      const result = await koto(['--config', file, 'run', path.join(dir, 'none.wav')], { cwd: dir, env: { KOTO_HOME: dir } });
      expect(result.code).toBe(3);
      expect(result.stderr).toMatch(/plain http is only allowed for loopback hosts.*\(KOTO_ERR_CONFIG_INVALID\)/);
      expectClean(result.stderr, 'the refusal');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the shared client itself refuses plain http to a non-loopback host before any connection (KOTO_ERR_INSECURE_ENDPOINT)', async () => {
    const r = await rig();
    try {
      const err = await r.kernel.http
        .request({ origin: 'http://api.example.com', path: '/v1/models', method: 'GET', headers: { authorization: `Bearer ${CANARY}` } })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'KOTO_ERR_INSECURE_ENDPOINT' });
      expect(r.kernel.http.stats().origins['http://api.example.com']?.connections ?? 0).toBe(0);
      expectClean(everythingShown(err), 'the refusal');
    } finally {
      await r.close();
    }
  });

  it('plain http to loopback is allowed (local servers): the dictation is delivered', async () => {
    const local = await plainHttpServer();
    const r = await rig({
      config: () => ({
        providers: { main: { use: 'openai-compatible', baseUrl: local.url, apiKey: CANARY } },
        correction: { stream: false },
      }),
    });
    try {
      expectDelivered(await r.run(), 'Over plain loopback HTTP.');
      expect(local.requests.some((q) => q.path.endsWith(ASR))).toBe(true);
      expect(r.logText()).not.toMatch(/unencrypted/);
    } finally {
      await r.close();
      await local.close();
    }
  });

  it('allowInsecureHttp opts a non-loopback http host in, with a warning (then DNS decides)', async () => {
    const r = await rig({
      config: () => ({
        providers: {
          main: { use: 'openai-compatible', baseUrl: 'http://koto-insecure.invalid/v1', apiKey: CANARY, allowInsecureHttp: true },
        },
      }),
    });
    try {
      expectFailedKept(await r.run(), 'KOTO_ERR_NETWORK', r.history, /koto-insecure\.invalid/);
      expect(r.logText()).toMatch(/uses plain http to http:\/\/koto-insecure\.invalid .*travel unencrypted/);
    } finally {
      await r.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Redirects: never across origins, never with the credential
// ---------------------------------------------------------------------------

describe('redirects', () => {
  let target: OpenAIServer;
  let r: Rig;
  beforeAll(async () => {
    // The redirect target: another origin (another port) that would happily answer.
    target = await startOpenAIServer();
    r = await rig();
  });
  afterAll(async () => {
    await r.close();
    await target.close();
  });

  for (const status of [301, 302, 307, 308]) {
    it(`${status} to another origin: KOTO_ERR_REDIRECT_REFUSED, recording kept, the other origin receives nothing`, async () => {
      r.server.inject({ path: ASR, status, headers: { location: `${target.baseUrl}${ASR}` }, body: '' });
      const { error } = expectFailedKept(await r.run(), 'KOTO_ERR_REDIRECT_REFUSED', r.history);
      expect(error.message).toContain(target.origin);
      expect(requestsTo(r.server, ASR)).toHaveLength(1); // not retried either
      expect(target.requests).toHaveLength(0);
      expect(target.stats.connections).toBe(0);
      r.server.reset();
    });
  }

  it('a redirect of the correction to another origin: raw text, and the other origin never sees the Authorization header', async () => {
    r.server.inject({ path: CHAT, status: 307, headers: { location: `${target.baseUrl}${CHAT}` }, body: '' });
    expectFallback(await r.run(), /redirected to another origin/);
    expect(target.requests.filter((q) => q.headers.authorization !== undefined)).toHaveLength(0);
    expect(target.requests).toHaveLength(0);
  });

  it('a scheme downgrade (https → http on the same host) is another origin: refused', async () => {
    r.server.inject({ path: ASR, status: 302, headers: { location: `http://127.0.0.1:${target.port}/v1${ASR}` }, body: '' });
    expectFailedKept(await r.run(), 'KOTO_ERR_REDIRECT_REFUSED', r.history);
    expect(target.stats.connections).toBe(0);
  });

  it('a same-origin redirect is not followed either (a clear error, the recording kept)', async () => {
    r.server.inject({ path: ASR, status: 302, headers: { location: `${r.server.baseUrl}/elsewhere` }, body: '' });
    const outcome = await r.run();
    expectFailedKept(outcome, 'KOTO_ERR_BAD_RESPONSE', r.history, /unexpected redirect \(HTTP 302\)/);
    expect(r.server.requests.filter((q) => q.path.endsWith('/elsewhere'))).toHaveLength(0);
  });

  it('the redirect refusal holds for any request through the shared client (a probe with the key)', async () => {
    r.server.inject({ path: '/models', status: 302, headers: { location: `${target.url}/steal` }, body: '' });
    const result = await r.kernel.probe('main');
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/KOTO_ERR_REDIRECT_REFUSED|redirected to another origin/);
    expect(target.requests).toHaveLength(0);
    await sleep(50);
    expect(target.stats.connections).toBe(0);
    // Settle the next session normally (the fault above was the probe's).
    expectDelivered(await settle(r.kernel.run({ data: WAV, name: 'ok.wav' })));
  });
});

// ---------------------------------------------------------------------------
// One rule for every secret name (issue 17): sig, x-api-key, clientSecret, password, ?sig= URLs,
// plugins that fail to load or start with the key in their message
// ---------------------------------------------------------------------------

describe('one secret rule: every credential-looking name, everywhere', { timeout: 120_000 }, () => {
  const SIG = 'sig-canary-Q7w2E9r4T1y6';
  const URL_SIG = 'url-sig-canary-3Hk8Pz5Vn2';
  const XKEY = 'xkey-canary-8Lm3Nb6Vc1';
  const CLIENT_SECRET = 'cs-canary-5Tg7Yh2Uj9';
  const PASSWORD = 'pw-canary-1Qa4Ws7Ed0';
  const ALL = [CANARY, SIG, URL_SIG, XKEY, CLIENT_SECRET, PASSWORD];
  let server: OpenAIServer;
  let dir: string;

  const clean = (text: string, where: string) => {
    for (const secret of [...ALL, ...ALL.map(encodeURIComponent)]) {
      if (text.includes(secret))
        throw new Error(
          `${secret} leaked into ${where}: ${text.slice(Math.max(0, text.indexOf(secret) - 120), text.indexOf(secret) + 60)}`,
        );
    }
  };
  const cli = async (what: string, args: string[]) => {
    const result = await koto(args, {
      cwd: dir,
      env: { KOTO_HOME: dir, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') },
      timeoutMs: 30_000,
    });
    clean(result.stdout, `stdout of ${what}`);
    clean(result.stderr, `stderr of ${what}`);
    return result;
  };

  beforeAll(async () => {
    server = await startOpenAIServer({ apiKey: CANARY });
    dir = tempDir('koto-secrets-rule-');
    writeFileSync(path.join(dir, 'ca.pem'), server.ca);
    writeFileSync(path.join(dir, 'clip.wav'), WAV);
    // A plugin that logs its options (a careless author): the log line must come out scrubbed.
    writeFileSync(
      path.join(dir, 'chatty.mjs'),
      `export default { name: 'chatty', apply(api, options) { api.log.warn('chatty started with ' + JSON.stringify(options)); api.log.debug('raw', options); } };\n`,
    );
    writeFileSync(
      path.join(dir, 'rule.yaml'),
      [
        'plugins:',
        '  - ./chatty.mjs',
        'pluginOptions:',
        '  chatty:',
        `    clientSecret: ${CLIENT_SECRET}`,
        `    password: ${PASSWORD}`,
        'providers:',
        '  main:',
        '    use: openai-compatible',
        `    baseUrl: ${server.baseUrl}?sv=2024-01-01&sig=${URL_SIG}`,
        `    apiKey: ${CANARY}`,
        '    headers:',
        `      x-api-key: ${XKEY}`,
        '    query:',
        `      sig: ${SIG}`,
        'asr:',
        '  retries: 0',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('config print (YAML and --json) redacts sig, x-api-key, clientSecret, password and the ?sig= of a URL', async () => {
    const yaml = await cli('config print', ['--config', 'rule.yaml', 'config', 'print']);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(yaml.stdout).toContain(`baseUrl: ${server.baseUrl}?sv=2024-01-01&sig=[redacted]`);
    const view = JSON.parse((await cli('config print --json', ['--config', 'rule.yaml', 'config', 'print', '--json'])).stdout) as {
      providers: { main: { headers: Record<string, string>; query: Record<string, string> } };
      pluginOptions: { chatty: Record<string, string> };
    };
    expect(view.providers.main.headers['x-api-key']).toBe('[redacted]');
    expect(view.providers.main.query.sig).toBe('[redacted]');
    expect(view.pluginOptions.chatty).toEqual({ clientSecret: '[redacted]', password: '[redacted]' });
  });

  it('a --debug run whose upstream echoes every credential back (and a plugin that logs its options): stdout and stderr clean', async () => {
    server.inject({
      path: ASR,
      status: 400,
      body: {
        error: {
          message: `bad: x-api-key ${XKEY}, url ?sig=${SIG}&other=${URL_SIG}, ${CLIENT_SECRET} ${PASSWORD} Bearer ${CANARY}`,
          type: 'invalid_request_error',
        },
      },
    });
    const result = await cli('run 400 echo', ['--debug', '--config', 'rule.yaml', '--no-daemon', 'run', 'clip.wav']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('(KOTO_ERR_BAD_REQUEST)');
    expect(result.stderr).toMatch(/chatty started with \{"clientSecret":"\[redacted\]","password":"\[redacted\]"\}/);
    // The request did carry them: the scrubbing is what keeps them out of sight.
    const sent = server.requests.at(-1)!;
    expect(sent.headers['x-api-key']).toBe(XKEY);
    expect(sent.query).toMatchObject({ sig: SIG });
  });

  it('a plugin that fails to load, or to start, with the key in its message: one clean line (CLI) and a clean error (Node API)', async () => {
    writeFileSync(
      path.join(dir, 'broken.mjs'),
      `throw new Error('cannot load: key ${CANARY} rejected at https://x.example/?sig=${SIG}');\n`,
    );
    writeFileSync(
      path.join(dir, 'failing.mjs'),
      `export default { name: 'failing', apply() { throw new Error('start failed for ${CANARY} / ${CLIENT_SECRET}'); } };\n`,
    );
    const base = [
      'providers:',
      '  main:',
      '    use: openai-compatible',
      `    baseUrl: ${server.baseUrl}`,
      `    apiKey: ${CANARY}`,
      '    query:',
      `      sig: ${SIG}`,
      'pluginOptions:',
      '  failing:',
      `    clientSecret: ${CLIENT_SECRET}`,
    ];
    writeFileSync(path.join(dir, 'broken.yaml'), [...base, 'plugins:', '  - ./broken.mjs', ''].join('\n'), { mode: 0o600 });
    writeFileSync(path.join(dir, 'failing.yaml'), [...base, 'plugins:', '  - ./failing.mjs', ''].join('\n'), { mode: 0o600 });

    for (const [name, code] of [
      ['broken.yaml', 'KOTO_ERR_PLUGIN_INVALID'],
      ['failing.yaml', 'KOTO_ERR_PLUGIN_APPLY'],
    ] as const) {
      const result = await cli(`config check ${name}`, ['--debug', '--config', name, 'config', 'check']);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(`(${code})`);
      expect(result.stderr).toContain('[redacted]');
      const err = await createKernel({
        configPath: path.join(dir, name),
        env: { KOTO_HOME: dir },
        builtins: ['openai-compatible'],
        logLevel: 'silent',
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code });
      clean(everythingShown(err), `the error of ${name}`);
    }
  });
});
