/** The daemon's sessions (a live dictation, a `transcribe` over the socket) land in the usage table too. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { sendCommand } from '../../src/daemon/client.ts';
import { testDaemon } from '../support/daemon.ts';
import { encodeWav } from '../../src/index.ts';
import { startOpenAIServer, tempHome } from '../support/index.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

it('a live dictation and a transcribe through the daemon are priced and recorded', async () => {
  const server = await startOpenAIServer({ transcribe: () => 'hello from the daemon', complete: () => 'Hello from the daemon.' });
  cleanups.push(() => server.close());
  const home = tempHome('koto-daemon-usage-');
  cleanups.push(() => home.cleanup());
  const configFile = path.join(home.dir, 'koto.yaml');
  writeFileSync(
    configFile,
    [
      'providers:',
      '  main: { use: openai-compatible, baseUrl: ' + JSON.stringify(server.baseUrl) + ', apiKey: sk-daemon-usage }',
      'asr: { model: gpt-4o-mini-transcribe }',
      'correction: { model: gpt-4.1-mini, stream: false }',
      'audio: { source: tone }',
      'output: [{ use: file, path: ./out.txt }]',
      `transport: { ca: ${JSON.stringify(server.ca)} }`,
      '',
    ].join('\n'),
  );
  const daemon = await testDaemon({ configPath: configFile, env: { KOTO_HOME: home.dir } });
  cleanups.push(() => daemon.close());
  await sendCommand(daemon.socketPath, 'start');
  const record = (await sendCommand(daemon.socketPath, 'stop', { wait: true })) as {
    id: string;
    cost: number | null;
    attempts: { stage: string }[];
  };
  expect(record.attempts.map((a) => a.stage)).toEqual(['asr', 'correction']);
  // The loopback server reports token usage for both calls; both models have default prices.
  expect(record.cost).toBeGreaterThan(0);
  const wav = path.join(home.dir, 'a.wav');
  writeFileSync(
    wav,
    encodeWav(
      new Int16Array(8000).map((_, i) => Math.round(4000 * Math.sin(i / 5))),
      16000,
    ),
  );
  const transcribed = (await sendCommand(daemon.socketPath, 'transcribe', { path: wav })) as { id: string; cost: number | null };
  expect(transcribed.cost).toBeGreaterThan(0);
  const rows = daemon.history.usage();
  expect(rows.map((r) => [r.sessionId, r.stage])).toEqual([
    [record.id, 'asr'],
    [record.id, 'correction'],
    [transcribed.id, 'asr'],
  ]);
});
