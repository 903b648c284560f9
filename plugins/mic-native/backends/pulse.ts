import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isNullDeviceName, type BackendDevice } from '../devices.ts';

/** Where PulseAudio (or PipeWire's pulse server) listens, as libpulse would look for it. */
export interface PulseServer {
  /** As written in PULSE_SERVER, or the default socket path. */
  readonly label: string;
  readonly explicit: boolean;
  readonly targets: readonly ({ path: string } | { host: string; port: number })[];
}

/** The server libpulse clients will use, or undefined when there is none to speak of. */
export function pulseServer(env: NodeJS.ProcessEnv = process.env): PulseServer | undefined {
  const spec = env.PULSE_SERVER?.trim();
  if (spec) {
    const targets = spec
      .split(/\s+/)
      .map((entry) => entry.replace(/^\{[^}]*\}/, ''))
      .map((entry) => {
        if (entry.startsWith('unix:')) return { path: entry.slice(5) };
        if (entry.startsWith('/')) return { path: entry };
        const hostPort = entry.replace(/^tcp[46]?:/, '');
        const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(hostPort);
        return { host: m?.[1] ?? hostPort, port: Number(m?.[2] ?? 4713) };
      });
    return { label: spec, explicit: true, targets };
  }
  const runtime = env.PULSE_RUNTIME_PATH || (env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, 'pulse') : undefined);
  if (!runtime) return undefined;
  const socket = path.join(runtime, 'native');
  // No socket file: no PulseAudio/PipeWire session here (ALSA only); nothing to check.
  if (!existsSync(socket)) return undefined;
  return { label: `unix:${socket}`, explicit: false, targets: [{ path: socket }] };
}

/** Connects to the server's socket: `undefined` when it answers, else why not. Never takes long. */
export async function pulseServerProblem(server: PulseServer, timeoutMs = 500): Promise<string | undefined> {
  const problems: string[] = [];
  for (const target of server.targets) {
    const problem = await new Promise<string | undefined>((resolve) => {
      const socket = 'path' in target ? net.connect(target.path) : net.connect(target.port, target.host);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(`no answer within ${timeoutMs} ms`);
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.destroy();
        resolve(undefined);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve(
          err.code === 'ENOENT'
            ? 'nothing listens there (no such socket)'
            : err.code === 'ECONNREFUSED'
              ? 'connection refused: nothing listens there'
              : err.message,
        );
      });
    });
    if (problem === undefined) return undefined;
    problems.push(problem);
  }
  return problems.join('; ');
}

export function run(cmd: string, args: readonly string[], timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr || '')
          .trim()
          .split('\n')[0];
        reject(Object.assign(new Error(detail || err.message), { code: (err as NodeJS.ErrnoException).code }));
      } else {
        resolve(stdout);
      }
    });
  });
}

interface PactlSource {
  name?: string;
  description?: string;
  driver?: string;
  monitor_of_sink?: string;
  properties?: Record<string, string>;
}

/** Sorts PulseAudio sources: monitors and module-null-source are not microphones. */
export function pulseDevices(sources: readonly PactlSource[], defaultSource: string | undefined): BackendDevice[] {
  return sources
    .filter((s) => typeof s.name === 'string')
    .map((s) => {
      const name = s.name!;
      const description = s.description || name;
      const monitor =
        s.properties?.['device.class'] === 'monitor' ||
        (s.monitor_of_sink !== undefined && s.monitor_of_sink !== 'n/a') ||
        name.endsWith('.monitor');
      const isNull = /module-null-source/.test(s.driver ?? '') || isNullDeviceName(description);
      return {
        name: description,
        id: name,
        description: name,
        isDefault: name === defaultSource,
        kind: isNull ? 'null' : monitor ? 'monitor' : 'input',
      } satisfies BackendDevice;
    });
}

/** `pactl list short sources`: index, name, driver, spec, state (pactl before 16 has no JSON). */
export function parsePactlShort(text: string): PactlSource[] {
  return text
    .split('\n')
    .map((line) => line.split('\t'))
    .filter((cols) => cols.length >= 3 && cols[1])
    .map((cols) => ({ name: cols[1]!, description: cols[1]!, driver: cols[2] }));
}

/** PulseAudio sources through pactl (which comes with parec). */
export async function listPulseSources(): Promise<BackendDevice[]> {
  let sources: PactlSource[];
  let defaultSource: string | undefined;
  try {
    sources = JSON.parse(await run('pactl', ['-f', 'json', 'list', 'sources'])) as PactlSource[];
    const info = JSON.parse(await run('pactl', ['-f', 'json', 'info'])) as { default_source_name?: string };
    defaultSource = info.default_source_name;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') throw err;
    if (/connection|refused|pa_context/i.test((err as Error).message)) throw err;
    // Older pactl: no JSON output.
    sources = parsePactlShort(await run('pactl', ['list', 'short', 'sources']));
    const info = await run('pactl', ['info']);
    defaultSource = /^Default Source:\s*(.+)$/m.exec(info)?.[1]?.trim();
  }
  return pulseDevices(sources, defaultSource);
}
