import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sendCommand } from '../../src/daemon/client.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import { encodeWav } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

let server: OpenAIServer;
let home: ReturnType<typeof tempHome>;
let daemon: Daemon | undefined;
let configFile: string;

function writeConfig(extra = ''): void {
  writeFileSync(
    configFile,
    [
      'providers:',
      '  main:',
      '    use: openai-compatible',
      `    baseUrl: ${server.baseUrl}`,
      '    apiKey: sk-daemon-canary-4242',
      'asr:',
      '  model: whisper-1',
      'correction:',
      '  model: gpt-test',
      '  stream: false',
      'audio:',
      '  source: tone',
      'output:',
      '  - use: file',
      '    path: ./out.txt',
      'transport:',
      `  ca: ${JSON.stringify(server.ca)}`,
      extra,
      '',
    ].join('\n'),
  );
}

async function startDaemon(): Promise<Daemon> {
  return testDaemon({ configPath: configFile, env: { KOTO_HOME: home.dir }, watch: { debounceMs: 50 } });
}

beforeEach(async () => {
  server = await startOpenAIServer({
    transcribe: () => 'hello from the daemon',
    complete: () => 'Hello from the daemon.',
  });
  home = tempHome('koto-daemon-');
  configFile = path.join(home.dir, 'koto.yaml');
  writeConfig();
  daemon = await startDaemon();
});

afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
  await server.close();
  home.cleanup();
});

const wav = encodeWav(
  new Int16Array(8000).map((_, i) => Math.round(4000 * Math.sin(i / 5))),
  16000,
);

describe('daemon', () => {
  it('listens on a socket private to the user (0600, folder 0700)', () => {
    expect(statSync(daemon!.socketPath).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(daemon!.socketPath)).mode & 0o777).toBe(0o700);
  });

  it('start → stop runs a session: text in the output file and a history row with the kept recording', async () => {
    const socket = daemon!.socketPath;
    expect(await sendCommand(socket, 'start')).toMatchObject({ state: 'recording' });
    expect(await sendCommand(socket, 'start')).toMatchObject({ message: 'already recording (no change)' });
    expect(await sendCommand(socket, 'status')).toMatchObject({ state: 'recording' });
    await new Promise((r) => setTimeout(r, 200));
    const record = (await sendCommand(socket, 'stop', { wait: true })) as { id: string; text: string; audioPath: string; state: string };
    expect(record).toMatchObject({ state: 'done', text: 'Hello from the daemon.' });
    expect(readFileSync(path.join(home.dir, 'out.txt'), 'utf8')).toBe('Hello from the daemon.\n');
    const entry = daemon!.history.get(record.id);
    expect(entry).toMatchObject({ state: 'done', raw: 'hello from the daemon', text: 'Hello from the daemon.', asrModel: 'whisper-1' });
    expect(existsSync(entry!.audioPath!)).toBe(true);
    const upload = server.requests.find((r) => r.path.endsWith('/audio/transcriptions'));
    expect(upload?.form?.files.file?.data.equals(readFileSync(entry!.audioPath!))).toBe(true);
    // Pre-warm happened while "the user was speaking": one connection for everything.
    expect(server.stats.tlsHandshakes).toBe(1);
  });

  it('a failed transcription keeps the recording; retry delivers once the upstream recovers', async () => {
    const socket = daemon!.socketPath;
    server.inject({ path: '/audio/transcriptions', status: 500, times: 3 });
    await sendCommand(socket, 'start');
    await new Promise((r) => setTimeout(r, 100));
    await expect(sendCommand(socket, 'stop', { wait: true })).rejects.toMatchObject({ code: 'KOTO_ERR_UPSTREAM' });
    const failed = daemon!.history.list(1)[0]!;
    expect(failed.state).toBe('failed');
    expect(existsSync(failed.audioPath!)).toBe(true);
    server.clearFaults();
    const retried = (await sendCommand(socket, 'retry', { id: failed.id })) as { text: string; id: string };
    expect(retried.text).toBe('Hello from the daemon.');
    expect(daemon!.history.get(retried.id)?.audioPath).toBe(failed.audioPath);
  });

  it('cancel discards the recording without a transcription', async () => {
    const socket = daemon!.socketPath;
    await sendCommand(socket, 'start');
    expect(await sendCommand(socket, 'cancel')).toMatchObject({ state: 'idle' });
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests.some((r) => r.path.endsWith('/audio/transcriptions'))).toBe(false);
    expect(await sendCommand(socket, 'stop')).toMatchObject({ message: 'not recording (no change)' });
  });

  it('start while the previous session is still transcribing records at once; sessions finish in order', async () => {
    const socket = daemon!.socketPath;
    server.inject({ path: '/audio/transcriptions', delayMs: 400 });
    await sendCommand(socket, 'start');
    await sendCommand(socket, 'stop');
    expect(await sendCommand(socket, 'start')).toMatchObject({ state: 'recording' });
    const second = (await sendCommand(socket, 'stop', { wait: true })) as { id: string };
    const lines = readFileSync(path.join(home.dir, 'out.txt'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    const rows = daemon!.history.list(2).reverse();
    expect(rows[1]?.id).toBe(second.id);
    expect(Date.parse(rows[0]!.endedAt!)).toBeLessThanOrEqual(Date.parse(rows[1]!.endedAt!));
  });

  it('scripts delegate transcribe/run/correct over the socket and share the warm connection', async () => {
    const socket = daemon!.socketPath;
    for (let i = 0; i < 3; i++) {
      const t = (await sendCommand(socket, 'transcribe', { data: Buffer.from(wav).toString('base64'), name: 'x.wav' })) as { text: string };
      expect(t.text).toBe('hello from the daemon');
    }
    const run = (await sendCommand(socket, 'run', { data: Buffer.from(wav).toString('base64'), name: 'x.wav' })) as { text: string };
    expect(run.text).toBe('Hello from the daemon.');
    // A delegated run never writes into the daemon's outputs.
    expect(existsSync(path.join(home.dir, 'out.txt'))).toBe(false);
    expect(await sendCommand(socket, 'correct', { text: 'hello' })).toMatchObject({ text: 'Hello from the daemon.' });
    expect(server.stats.tlsHandshakes).toBe(1);
  });

  it('reload: a valid edit applies; an invalid one is reported and the old config stays', async () => {
    const socket = daemon!.socketPath;
    writeConfig('daemon:\n  maxRecordingMs: 1234');
    await expect.poll(() => daemon!.kernel.config.daemon.maxRecordingMs, { timeout: 30_000 }).toBe(1234);
    writeFileSync(configFile, 'asr: [\n');
    await expect(sendCommand(socket, 'reload')).rejects.toMatchObject({ code: 'KOTO_ERR_CONFIG_PARSE', exitCode: 3 });
    const status = (await sendCommand(socket, 'status')) as { lastConfigError: { code: string }; configGeneration: number };
    expect(status.lastConfigError.code).toBe('KOTO_ERR_CONFIG_PARSE');
    expect(daemon!.kernel.config.daemon.maxRecordingMs).toBe(1234);
  });

  it('refuses to start a second daemon on the same socket, and replaces a stale socket', async () => {
    await expect(startDaemon()).rejects.toMatchObject({ code: 'KOTO_ERR_DAEMON_RUNNING' });
    await daemon!.close();
    // A stale socket file (nobody listening) is cleaned up.
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(daemon!.socketPath, () => r()));
    await new Promise<void>((r) => stale.close(() => r()));
    writeFileSync(daemon!.socketPath, '');
    daemon = await startDaemon();
    expect(await sendCommand(daemon.socketPath, 'ping')).toMatchObject({ pid: process.pid });
  });

  it('status reports generations and transport counters; secrets never cross the socket', async () => {
    const socket = daemon!.socketPath;
    await sendCommand(socket, 'transcribe', { data: Buffer.from(wav).toString('base64'), name: 'x.wav' });
    const status = (await sendCommand(socket, 'status')) as Record<string, unknown>;
    expect(status).toMatchObject({ state: 'idle', configGeneration: 1, transportGeneration: 1 });
    expect(JSON.stringify(status)).not.toContain('sk-daemon-canary-4242');
    const origin = (status.transport as { origins: Record<string, { lastProtocol: string }> }).origins[server.origin];
    expect(origin?.lastProtocol).toBe('h2');
  });

  it('lists a session interrupted by a daemon that died mid-recording, and it can be retried', async () => {
    const socket = daemon!.socketPath;
    await sendCommand(socket, 'start');
    await new Promise((r) => setTimeout(r, 100));
    const id = ((await sendCommand(socket, 'status')) as { recording: { id: string } }).recording.id;
    // Simulate a crash: the process would die here; the history row stays in "recording".
    const row = daemon!.history.get(id);
    expect(row?.state).toBe('recording');
    await sendCommand(socket, 'cancel');
    daemon!.history.setState(id, 'recording', (await writeRecording(id)) ?? undefined);
    await daemon!.close();
    daemon = await startDaemon();
    expect(daemon.status().interrupted).toContain(id);
    expect(daemon.history.get(id)?.state).toBe('interrupted');
    const retried = (await sendCommand(daemon.socketPath, 'retry', { id })) as { text: string };
    expect(retried.text).toBe('Hello from the daemon.');
  });
});

async function writeRecording(id: string): Promise<string> {
  const file = path.join(home.dir, 'data', 'recordings', `${id}.wav`);
  writeFileSync(file, wav);
  return file;
}
