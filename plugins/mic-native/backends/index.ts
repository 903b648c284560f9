import { isMicError, micError } from '../errors.ts';
import type { BackendName } from '../options.ts';
import type { BackendDevice } from '../devices.ts';
import { ProcessBackend } from './process.ts';
import { pulseServer, pulseServerProblem } from './pulse.ts';
import { pvrecorderMissing, PvRecorderBackend } from './pvrecorder.ts';
import type { Backend, DeviceCapture, OpenRequest } from './types.ts';

export type { Backend, DeviceCapture, OpenRequest } from './types.ts';
export { SAMPLE_RATE } from './types.ts';

export function backendNamed(name: BackendName): Backend {
  return name === 'pvrecorder' ? new PvRecorderBackend() : new ProcessBackend(name);
}

/** The order `auto` tries backends in on this platform. */
export function autoOrder(platform: NodeJS.Platform = process.platform): BackendName[] {
  return platform === 'linux' ? ['pvrecorder', 'parec', 'arecord', 'ffmpeg', 'sox'] : ['pvrecorder', 'ffmpeg', 'sox'];
}

const USER_ERRORS = new Set(['device-not-found', 'device-ambiguous', 'null-device', 'server-unreachable']);

/** Errors that no other backend would fix: a wrong device name, a null device, no sound server. */
export function isUserError(err: unknown): boolean {
  return isMicError(err) && USER_ERRORS.has((err.details as { reason: string }).reason);
}

/**
 * Fails at once, with a clear error, when a PulseAudio server is configured (PULSE_SERVER, or its
 * socket exists) but does not answer: otherwise the backends would hang or fall back to ALSA.
 */
export async function checkAudioServer(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (process.platform !== 'linux') return;
  const server = pulseServer(env);
  if (!server) return;
  const problem = await pulseServerProblem(server);
  if (problem) throw micError('server-unreachable', { server: server.label, detail: problem });
}

/** Why the audio server cannot be reached, or undefined (used to word a lost device). */
export async function audioServerProblem(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (process.platform !== 'linux') return undefined;
  const server = pulseServer(env);
  if (!server) return undefined;
  const problem = await pulseServerProblem(server, 300);
  return problem ? `the audio server ${server.label} is gone: ${problem}` : undefined;
}

/**
 * The pvrecorder backend asked for by name needs its addon (an optional dependency): say which
 * package to install, before anything else is tried. `auto` just moves on to the next backend.
 */
async function requireInstalled(choice: 'auto' | BackendName): Promise<void> {
  if (choice === 'pvrecorder' && !(await new PvRecorderBackend().available())) throw pvrecorderMissing();
}

export interface OpenOutcome {
  readonly capture: DeviceCapture;
  /** Backends tried before this one, with why they failed. */
  readonly skipped: readonly string[];
}

/**
 * Opens the device with the chosen backend, or with the first in `auto` order that works
 * (`candidates` replaces that order, e.g. in tests).
 */
export async function openDevice(
  choice: 'auto' | BackendName,
  request: OpenRequest,
  log?: (msg: string) => void,
  candidates?: readonly Backend[],
): Promise<OpenOutcome> {
  if (!candidates) await requireInstalled(choice);
  await checkAudioServer();
  const backends = candidates ?? (choice === 'auto' ? autoOrder() : [choice]).map(backendNamed);
  const skipped: string[] = [];
  let lastError: unknown;
  for (const backend of backends) {
    const name = backend.name;
    if (!(await backend.available())) {
      skipped.push(`${name}: not installed`);
      continue;
    }
    try {
      const capture = await backend.open(request);
      return { capture, skipped };
    } catch (err) {
      if (isUserError(err) || choice !== 'auto') throw err;
      lastError = err;
      const why = err instanceof Error ? err.message : String(err);
      skipped.push(`${name}: ${why}`);
      log?.(`backend ${name} failed (${why}); trying the next one`);
    }
  }
  if (lastError && skipped.length === 1) throw lastError;
  throw micError('no-backend', { detail: `tried ${skipped.join('; ') || 'none'}` }, lastError);
}

/** The input devices of the chosen backend (or the first in `auto` order that can list them). */
export async function listDevices(choice: 'auto' | BackendName): Promise<{ backend: BackendName; devices: BackendDevice[] }> {
  await requireInstalled(choice);
  await checkAudioServer();
  const names = choice === 'auto' ? autoOrder() : [choice];
  const skipped: string[] = [];
  let lastError: unknown;
  for (const name of names) {
    const backend = backendNamed(name);
    if (!(await backend.available())) {
      skipped.push(`${name}: not installed`);
      continue;
    }
    try {
      const devices = await backend.list();
      if (devices) return { backend: name, devices };
      skipped.push(`${name}: cannot list devices`);
    } catch (err) {
      lastError = err;
      skipped.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw micError('no-backend', { detail: `no backend could list the devices: ${skipped.join('; ') || 'none tried'}` }, lastError);
}
