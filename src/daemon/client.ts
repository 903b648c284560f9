import net from 'node:net';
import { kotoError, KotoError } from '../kernel/errors.ts';
import { lineParser, type DaemonCommand, type DaemonResponse } from './protocol.ts';

/** True when a daemon answers on the socket (used to decide whether to delegate). */
export async function daemonAnswers(socketPath: string, timeoutMs = 300): Promise<boolean> {
  try {
    await sendCommand(socketPath, 'ping', {}, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/** Sends one command; `KOTO_ERR_NO_DAEMON` (exit 4) when nothing listens. */
export function sendCommand(socketPath: string, cmd: DaemonCommand, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<unknown> {
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
      done(() => reject(noDaemon ? kotoError('KOTO_ERR_NO_DAEMON', { socket: socketPath }) : err));
    });
    socket.on(
      'data',
      lineParser(
        (message) => {
          const response = message as DaemonResponse;
          if (response.ok) done(() => resolve(response.result));
          else {
            done(() => reject(KotoError.revive(response.error)));
          }
        },
        (err) => done(() => reject(err)),
      ),
    );
    socket.on('close', () => done(() => reject(kotoError('KOTO_ERR_NO_DAEMON', { socket: socketPath }))));
    socket.write(`${JSON.stringify({ id: 1, cmd, args })}\n`);
  });
}
