/**
 * A kernel with azure-foundry and a fake microphone, whose `az` instance uploads to the loopback
 * Azure server and streams live recordings to a loopback TLS realtime server (the protocol
 * subset of test/realtime/server.ts, which records the handshake's path, query and headers).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createKernel, type Kernel, type KotoPlugin } from 'koto-voice';
import { fakeAudioSourcePlugin, tonePcm } from 'koto-voice/testing';
import { startRealtimeServer, type RealtimeServer, type RealtimeServerOptions } from '../realtime/server.ts';
import { startAzureServer, type AzureServer } from './azure-server.ts';
import { API_KEY, verifyToken } from './helpers.ts';

/** One second of a 1 kHz tone at 16 kHz: 24 000 samples once resampled for the socket. */
export const second = (): Int16Array => tonePcm({ seconds: 1, frequency: 1000, amplitude: 0.5 });

export interface LiveAzure {
  readonly kernel: Kernel;
  readonly azure: AzureServer;
  readonly realtime: RealtimeServer;
  readonly home: string;
  readonly logs: { level: string; message: string }[];
  warnings(): string;
  close(): Promise<void>;
}

export interface LiveAzureOptions {
  readonly server?: RealtimeServerOptions;
  /** `realtime` of the instance; `endpoint` defaults to the realtime server (false: off). */
  readonly realtime?: Record<string, unknown> | boolean | ((server: RealtimeServer) => Record<string, unknown>);
  /** More plugins for the kernel. */
  readonly plugins?: readonly KotoPlugin[];
  /** Merged into the `az` instance. */
  readonly provider?: Record<string, unknown> | ((home: string) => Record<string, unknown> | Promise<Record<string, unknown>>);
}

export async function liveAzure(options: LiveAzureOptions = {}): Promise<LiveAzure> {
  const azure = await startAzureServer({ apiKey: API_KEY, token: verifyToken });
  const realtime = await startRealtimeServer(options.server);
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-azure-realtime-'));
  const logs: { level: string; message: string }[] = [];
  const setting = typeof options.realtime === 'function' ? options.realtime(realtime) : (options.realtime ?? {});
  const provider = typeof options.provider === 'function' ? await options.provider(home) : (options.provider ?? {});
  let kernel: Kernel;
  try {
    kernel = await createKernel({
      search: false,
      builtins: ['azure-foundry'],
      plugins: [fakeAudioSourcePlugin({ pcm: second, holdOpen: true }), ...(options.plugins ?? [])],
      env: { KOTO_HOME: home },
      logLevel: 'debug',
      logSink: (entry) => logs.push({ level: entry.level, message: entry.message }),
      config: {
        providers: {
          az: {
            use: 'azure-foundry',
            endpoint: `${azure.url}/openai/v1`,
            auth: { type: 'api-key', apiKey: API_KEY },
            deployments: { asr: 'gpt-4o-mini-transcribe' },
            realtime: typeof setting === 'boolean' ? setting : { endpoint: realtime.origin, ...setting },
            ...provider,
          },
        },
        asr: { provider: 'az', retries: 0 },
        correction: { enabled: false },
        audio: { source: 'fake' },
        output: [],
        // Both loopback servers use the process's one test certificate.
        transport: { ca: azure.ca },
      },
    });
  } catch (err) {
    await realtime.close();
    await azure.close();
    await rm(home, { recursive: true, force: true });
    throw err;
  }
  return {
    kernel,
    azure,
    realtime,
    home,
    logs,
    warnings: () =>
      logs
        .filter((l) => l.level === 'warn')
        .map((l) => l.message)
        .join('\n'),
    async close() {
      await kernel.close();
      await realtime.close();
      await azure.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}
