import http from 'node:http';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { Daemon } from '../../src/daemon/daemon.ts';
import { definePlugin } from '../../src/index.ts';
import { toneSource } from '../daemon/nothing-lost-support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

export const CANARY = 'sk-ui-canary-7c1f00d5e2';

/** Devices of the tone source, for the Devices view. */
export const toneDevices = definePlugin({
  name: 'tone-devices',
  apply(api) {
    api.hooks.audioDevices.for('tone').tapPromise('tone-devices', async () => [
      { name: 'default', isDefault: true, backend: 'tone', description: 'the test tone' },
      { name: 'tone-usb', isDefault: false, backend: 'tone', description: 'a second tone' },
    ]);
  },
});

export interface Panel {
  server: OpenAIServer;
  home: ReturnType<typeof tempHome>;
  daemon: Daemon;
  configFile: string;
  port: number;
  close(): Promise<void>;
}

/** A config with comments the settings editor must keep. */
export function configText(server: OpenAIServer, extra: string[] = []): string {
  return [
    '# Koto test config: these comments must survive edits from the panel',
    'providers:',
    '  main:',
    '    use: openai-compatible',
    `    baseUrl: ${server.baseUrl}`,
    `    apiKey: ${CANARY} # the key: never shown by the panel`,
    'asr:',
    '  model: whisper-1 # transcription model',
    '  retries: 0',
    'correction:',
    '  # the model that cleans up the transcript',
    '  model: gpt-first',
    '  stream: false',
    '  protocol: chat # declared by openai-compatible (correctionOptions), not by the kernel',
    '  systemPrompt: ./system-prompt.txt',
    'dictionary: ./dictionary.txt',
    'audio:',
    '  source: tone',
    'output:',
    '  - use: file',
    '    path: ./out.txt',
    'transport:',
    `  ca: ${JSON.stringify(server.ca)}`,
    'daemon:',
    '  ui:',
    '    port: 0 # any free port',
    ...extra,
    '',
  ].join('\n');
}

/** The config file and the dictionary and prompt files it names. */
export function writeConfig(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  writeFileSync(path.join(path.dirname(file), 'dictionary.txt'), 'Koto\nPreact\n');
  writeFileSync(path.join(path.dirname(file), 'system-prompt.txt'), 'Fix the punctuation of the dictation. Keep the words.\n');
}

export async function startPanel(options: { transcribe?: () => string; extra?: string[] } = {}): Promise<Panel> {
  const server = await startOpenAIServer({
    transcribe: options.transcribe ?? (() => 'hello from the panel'),
    complete: (req) => `Hello from the panel (${String((req.json as { model?: string } | undefined)?.model)}).`,
  });
  const home = tempHome('koto-ui-');
  const configFile = path.join(home.dir, 'koto.yaml');
  writeConfig(configFile, configText(server, options.extra));
  const daemon = await Daemon.start({
    configPath: configFile,
    env: { KOTO_HOME: home.dir },
    builtins: ['openai-compatible', 'outputs'],
    plugins: [toneSource, toneDevices],
    logLevel: 'silent',
    watch: { debounceMs: 50 },
    shutdownTimeoutMs: 5000,
  });
  const url = daemon.status().ui.url;
  if (daemon.status().ui.error) throw new Error(`the panel did not start: ${daemon.status().ui.error}`);
  return {
    server,
    home,
    daemon,
    configFile,
    port: url ? Number(new URL(url).port) : 0,
    async close() {
      await daemon.close();
      await server.close();
      home.cleanup();
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A raw HTTP request: unlike fetch, any Host / Origin / Cookie header can be sent. */
export function request(
  port: number,
  pathname: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: pathname,
        method: options.method ?? 'GET',
        headers: { host: `127.0.0.1:${port}`, ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface Session {
  cookie: string;
  key: string;
}

/** Logs in the way a browser does: the link from the `ui` command; its cookie and the page key kept. */
export async function login(panel: Panel): Promise<Session> {
  const { url } = (await panel.daemon.command('ui', {})) as { url: string };
  const u = new URL(url);
  const reply = await request(panel.port, `${u.pathname}${u.search}`);
  if (reply.status !== 200) throw new Error(`login failed: ${reply.status} ${reply.body}`);
  const cookie = String(reply.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
  const key = /<meta name="koto-key" content="([\w-]+)">/.exec(reply.body)?.[1];
  if (!key) throw new Error(`no page key in ${reply.body}`);
  return { cookie, key };
}

/** A same-origin JSON call with the session cookie and the page key, as the page makes it. */
export function call(panel: Panel, session: Session, method: string, pathname: string, body?: unknown): Promise<Reply> {
  return request(panel.port, pathname, {
    method,
    headers: {
      cookie: session.cookie,
      'x-koto-key': session.key,
      origin: `http://127.0.0.1:${panel.port}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}
