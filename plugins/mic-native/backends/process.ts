import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { isNullDeviceName, selectDevice, type BackendDevice } from '../devices.ts';
import { micError } from '../errors.ts';
import { S16Decoder } from '../frames.ts';
import type { BackendName } from '../options.ts';
import { listPulseSources, run } from './pulse.ts';
import { SAMPLE_RATE, type Backend, type DeviceCapture, type OpenRequest } from './types.ts';

/** Finds a program on PATH (with PATHEXT on Windows). */
export async function which(program: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const exts = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const file = path.join(dir, program + ext);
      try {
        await access(file, constants.X_OK);
        return file;
      } catch {
        // next
      }
    }
  }
  return undefined;
}

/** `arecord -L`: a PCM name on its own line, its description indented below. */
export function parseArecordList(text: string): BackendDevice[] {
  const devices: BackendDevice[] = [];
  let current: { id: string; lines: string[] } | undefined;
  const flush = () => {
    if (!current) return;
    const description = current.lines.join(', ');
    const id = current.id;
    const base = id.split(':')[0]!;
    const kind: BackendDevice['kind'] =
      id === 'null' || isNullDeviceName(description)
        ? 'null'
        : /^(?:lavrate|samplerate|samplerate_\w+|speexrate|speexrate_\w+|speex|upmix|vdownmix|jack|oss|usbstream|surround\d*|iec958|hdmi|front|dmix)$/.test(
              base,
            )
          ? 'plugin'
          : 'input';
    devices.push({ name: id, id, description, isDefault: id === 'default', kind });
  };
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (/^\s/.test(line)) current?.lines.push(line.trim());
    else {
      flush();
      current = { id: line.trim(), lines: [] };
    }
  }
  flush();
  return devices;
}

/** ffmpeg's device listing on stderr: avfoundation (macOS) or dshow (Windows) audio devices. */
export function parseFfmpegList(text: string, platform: NodeJS.Platform): BackendDevice[] {
  const devices: BackendDevice[] = [];
  if (platform === 'darwin') {
    let audio = false;
    for (const line of text.split('\n')) {
      if (/AVFoundation audio devices/.test(line)) audio = true;
      else if (/AVFoundation video devices/.test(line)) audio = false;
      else if (audio) {
        const m = /\]\s*\[(\d+)\]\s*(.+)$/.exec(line);
        if (m) devices.push({ name: m[2]!.trim(), id: m[1]!, isDefault: devices.length === 0, kind: 'input' });
      }
    }
  } else {
    for (const line of text.split('\n')) {
      const m = /\]\s*"(.+)"\s*\(audio\)/.exec(line);
      if (m) devices.push({ name: m[1]!, id: m[1]!, isDefault: devices.length === 0, kind: 'input' });
    }
  }
  return devices;
}

interface ProcessSpec {
  readonly program: string;
  /** Arguments for the device `id` (undefined: the system default). */
  args(id: string | undefined, latencyMs: number): string[];
  list(): Promise<BackendDevice[] | undefined>;
  /** The program has no "default device" (ffmpeg's dshow): the listed default is named instead. */
  readonly explicitDefault?: boolean;
}

const RAW_16K = ['-t', 'raw', '-r', String(SAMPLE_RATE), '-c', '1', '-b', '16', '-e', 'signed-integer', '-L', '-'];

const SPECS: Record<Exclude<BackendName, 'pvrecorder'>, ProcessSpec> = {
  parec: {
    program: 'parec',
    args: (id, latencyMs) => [
      '--raw',
      `--rate=${SAMPLE_RATE}`,
      '--channels=1',
      '--format=s16le',
      // parec's server-side buffer is large anyway: this only sets how often audio is handed over.
      `--latency-msec=${Math.min(latencyMs || 30, 30)}`,
      '--client-name=Koto',
      '--stream-name=Dictation',
      ...(id ? [`--device=${id}`] : []),
    ],
    list: listPulseSources,
  },
  arecord: {
    program: 'arecord',
    args: (id) => ['-q', '-t', 'raw', '-f', 'S16_LE', '-r', String(SAMPLE_RATE), '-c', '1', '-D', id ?? 'default'],
    list: async () => parseArecordList(await run('arecord', ['-L'])),
  },
  sox: {
    program: 'sox',
    args: (id) => [
      '-q',
      ...(id ? ['-t', process.platform === 'darwin' ? 'coreaudio' : process.platform === 'win32' ? 'waveaudio' : 'alsa', id] : ['-d']),
      ...RAW_16K,
    ],
    list: async () => undefined,
  },
  ffmpeg: {
    program: 'ffmpeg',
    explicitDefault: process.platform === 'win32',
    args: (id) => [
      '-hide_banner',
      '-loglevel',
      'error',
      '-nostdin',
      ...(process.platform === 'darwin'
        ? ['-f', 'avfoundation', '-i', `:${id ?? 'default'}`]
        : process.platform === 'win32'
          ? ['-f', 'dshow', '-i', `audio=${id ?? ''}`]
          : ['-f', 'pulse', '-i', id ?? 'default']),
      '-ac',
      '1',
      '-ar',
      String(SAMPLE_RATE),
      '-f',
      's16le',
      '-',
    ],
    list: async () => {
      if (process.platform === 'linux') return listPulseSources();
      const args =
        process.platform === 'darwin'
          ? ['-hide_banner', '-f', 'avfoundation', '-list_devices', 'true', '-i', '']
          : ['-hide_banner', '-list_devices', 'true', '-f', 'dshow', '-i', 'dummy'];
      // ffmpeg lists devices on stderr and exits non-zero.
      const text = await new Promise<string>((resolve) => {
        const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
        child.on('error', () => resolve(''));
        child.on('close', () => resolve(err));
      });
      return parseFfmpegList(text, process.platform);
    },
  },
};

function lastLines(text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.slice(-2).join('; ') || '(no message)';
}

/** A recorder program writing raw 16 kHz mono s16le to stdout. */
export class ProcessBackend implements Backend {
  readonly name: Exclude<BackendName, 'pvrecorder'>;
  readonly #spec: ProcessSpec;

  constructor(name: Exclude<BackendName, 'pvrecorder'>) {
    this.name = name;
    this.#spec = SPECS[name];
  }

  async available(): Promise<boolean> {
    return (await which(this.#spec.program)) !== undefined;
  }

  async list(): Promise<BackendDevice[] | undefined> {
    return this.#spec.list();
  }

  async open(request: OpenRequest): Promise<DeviceCapture> {
    let id: string | undefined;
    let deviceName = request.device;
    const devices = await this.list().catch((err: unknown) => {
      throw micError(
        'open-failed',
        { device: request.device, backend: this.name, detail: `cannot list devices: ${(err as Error).message}` },
        err,
      );
    });
    if (devices) {
      const selection = selectDevice(devices, request.device);
      if (selection.kind === 'device') {
        id = String(selection.device.id);
        deviceName = selection.device.name;
      } else {
        const def = devices.find((d) => d.isDefault);
        if (def && (def.kind === 'null' || isNullDeviceName(def.name))) throw micError('null-device', { device: def.name });
        deviceName = def?.name ?? 'default';
        if (this.#spec.explicitDefault && def) id = String(def.id);
      }
    } else if (request.device.trim().toLowerCase() !== 'default' && request.device.trim()) {
      id = request.device.trim();
    }
    return openProcess(this.name, this.#spec.program, this.#spec.args(id, request.latencyMs ?? 0), deviceName, request);
  }
}

function openProcess(
  backend: Exclude<BackendName, 'pvrecorder'>,
  program: string,
  args: string[],
  device: string,
  request: OpenRequest,
): Promise<DeviceCapture> {
  return new Promise<DeviceCapture>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    } catch (err) {
      reject(micError('open-failed', { device, backend, detail: (err as Error).message }, err));
      return;
    }
    const decoder = new S16Decoder();
    let stderr = '';
    let chunks = 0;
    let opened = false;
    let stopping = false;
    let failed = false;
    const closed = new Promise<void>((done) => child.once('close', () => done()));
    const timer = setTimeout(() => {
      if (opened) return;
      failed = true;
      child.kill('SIGKILL');
      reject(
        micError('open-failed', {
          device,
          backend,
          detail: `no audio within ${request.openTimeoutMs} ms${stderr ? ` (${lastLines(stderr)})` : ''}`,
        }),
      );
    }, request.openTimeoutMs);

    const capture: DeviceCapture = {
      backend,
      device,
      progress: () => chunks,
      stop: async () => {
        if (!stopping) {
          stopping = true;
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 1500);
          await closed;
          clearTimeout(killer);
        }
        await closed;
      },
      kill: () => {
        stopping = true;
        child.kill('SIGKILL');
      },
    };

    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      if (failed) return;
      const samples = decoder.decode(chunk);
      if (samples.length === 0) return;
      chunks++;
      if (!opened) {
        opened = true;
        clearTimeout(timer);
        resolve(capture);
      }
      request.onData(samples);
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (failed) return;
      failed = true;
      const detail = err.code === 'ENOENT' ? `${program} is not installed` : err.message;
      if (!opened) reject(micError('open-failed', { device, backend, detail }, err));
      else request.onError(Object.assign(new Error(detail), { cause: err }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (failed || stopping) return;
      failed = true;
      const detail = `${program} exited (${signal ?? `code ${code}`}): ${lastLines(stderr)}`;
      if (!opened) reject(micError('open-failed', { device, backend, detail }));
      else request.onError(Object.assign(new Error(detail), { stderr }));
    });
  });
}
