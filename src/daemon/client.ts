import { rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, ERRORS, kotoError, KotoError } from '../kernel/errors.ts';
import { controlError, encodeRequest, lineParser, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, type DaemonCommand } from './wire.ts';
import { checkClientSocket } from './socket-guard.ts';

/** The errors that mean "the runtime folder or socket is not ours": never talk through it. */
export function isUnsafeRuntime(err: unknown): err is KotoError {
  return KotoError.is(err) && (err.code === 'KOTO_ERR_UNSAFE_FOLDER' || err.code === 'KOTO_ERR_UNSAFE_SOCKET');
}

/**
 * True when a daemon answers on the socket (used to decide whether to delegate). An unsafe
 * runtime folder or socket is not a daemon: with `onUnsafe` the caller is told (and works
 * standalone), without it the error is thrown.
 */
/**
 * How long `koto run` waits for a daemon's pong before working standalone. Nobody listening is
 * refused at once; a live daemon on a loaded machine can take well over 300 ms to answer, and
 * treating it as absent would run a second kernel and skip the daemon's history.
 */
export const DAEMON_PING_MS = 3000;

export async function daemonAnswers(socketPath: string, timeoutMs = DAEMON_PING_MS, onUnsafe?: (err: KotoError) => void): Promise<boolean> {
  try {
    await sendCommand(socketPath, 'ping', {}, timeoutMs);
    return true;
  } catch (err) {
    if (isUnsafeRuntime(err)) {
      if (!onUnsafe) throw err;
      onUnsafe(err);
    }
    return false;
  }
}

/**
 * Sends one command; `KOTO_ERR_NO_DAEMON` (exit 4) when nothing listens. Nothing is sent unless
 * the runtime folder and the socket are private to this user (socket-guard.ts).
 *
 * A request longer than one control line (1 MiB) is refused here, except audio bytes
 * (`transcribe`/`run` with base64 `data`, i.e. `koto run -` delegated): those are written to a
 * 0600 file in the (private) runtime folder and the daemon reads them from there. The daemon
 * then saves them to the recordings folder like inline audio, so history and retry are the same.
 */
export async function sendCommand(
  socketPath: string,
  cmd: DaemonCommand,
  args: Record<string, unknown> = {},
  timeoutMs = 10_000,
): Promise<unknown> {
  if (checkClientSocket(socketPath) === 'missing') throw kotoError('KOTO_ERR_NO_DAEMON', { socket: socketPath });
  let line = encodeRequest(1, cmd, args);
  let upload: string | undefined;
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) {
    if ((cmd !== 'transcribe' && cmd !== 'run') || typeof args.data !== 'string') {
      throw controlError(
        `the "${cmd}" request is ${Buffer.byteLength(line)} bytes; a control message is at most ${MAX_REQUEST_BYTES} bytes`,
      );
    }
    // Loaded here: the control commands bound to keys (the fast client) never pay for node:crypto.
    const { randomBytes } = await import('node:crypto');
    upload = path.join(path.dirname(socketPath), `upload-${process.pid}-${randomBytes(8).toString('hex')}.audio`);
    await writeFile(upload, Buffer.from(args.data, 'base64'), { mode: 0o600, flag: 'wx' });
    const { data: _inline, ...rest } = args;
    line = encodeRequest(1, cmd, { ...rest, upload });
  }
  try {
    return await exchange(socketPath, cmd, line, timeoutMs);
  } finally {
    // The daemon removes it once read; this covers a daemon that never got that far.
    if (upload) await rm(upload, { force: true });
  }
}

function exchange(socketPath: string, cmd: DaemonCommand, line: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    const timer = setTimeout(
      () => done(() => reject(kotoError('KOTO_ERR_TIMEOUT', { what: `the daemon's answer to "${cmd}"`, ms: timeoutMs }))),
      timeoutMs,
    );
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const noDaemon = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK';
      done(() =>
        reject(
          noDaemon
            ? kotoError('KOTO_ERR_NO_DAEMON', { socket: socketPath })
            : kotoError('KOTO_ERR_INTERNAL', { detail: `control socket: ${describe(err)}` }, { cause: err }),
        ),
      );
    });
    socket.on(
      'data',
      lineParser(
        (message) => done(() => settle(message, resolve, reject)),
        (err) => done(() => reject(unreadable(err.message))),
        MAX_RESPONSE_BYTES,
      ),
    );
    socket.on('close', () => done(() => reject(kotoError('KOTO_ERR_NO_DAEMON', { socket: socketPath }))));
    socket.write(line);
  });
}

function settle(message: unknown, resolve: (value: unknown) => void, reject: (err: unknown) => void): void {
  const response = (typeof message === 'object' && message !== null ? message : {}) as Record<string, unknown>;
  if (response.ok === true) return resolve(response.result);
  const error = response.error as Record<string, unknown> | undefined;
  if (
    response.ok === false &&
    typeof error === 'object' &&
    error !== null &&
    typeof error.code === 'string' &&
    typeof error.message === 'string'
  ) {
    const record = typeof error.record === 'object' && error.record !== null ? { record: error.record } : {};
    return reject(
      Object.assign(
        KotoError.revive({
          // Only codes of our catalogue (`"toString" in ERRORS` is true, too).
          code: Object.hasOwn(ERRORS, error.code) ? error.code : 'KOTO_ERR_INTERNAL',
          message: error.message,
          ...(typeof error.fix === 'string' ? { fix: error.fix } : {}),
          ...(typeof error.exitCode === 'number' ? { exitCode: error.exitCode } : {}),
        }),
        record,
      ),
    );
  }
  reject(unreadable('not a Koto response'));
}

function unreadable(detail: string): KotoError {
  return kotoError('KOTO_ERR_INTERNAL', { detail: `the daemon's answer is unreadable (${detail})` });
}
