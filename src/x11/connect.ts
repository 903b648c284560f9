import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isMissingModule } from '../kernel/dependencies.ts';
import type { XClient, XDisplay, XError } from './types.ts';

export interface ConnectX11Options {
  /** Gives up (and closes the socket) when aborted: the caller's deadline or cancel. */
  readonly signal?: AbortSignal | undefined;
  /** Guards a display that accepts the connection and never answers (default 10 s); not a speed limit. */
  readonly timeoutMs?: number | undefined;
}

export interface X11Connection {
  readonly client: XClient;
  readonly info: XDisplay;
  /** The root window of the client's screen. */
  readonly root: number;
}

/** Why a connection failed, for the caller's own error and remedy. */
export type X11ConnectFailure = 'missing' | 'cookie' | 'display' | 'refused' | 'timeout' | 'aborted';

export class X11ConnectError extends Error {
  readonly reason: X11ConnectFailure;
  constructor(message: string, reason: X11ConnectFailure, options?: ErrorOptions) {
    super(message, options);
    this.name = 'X11ConnectError';
    this.reason = reason;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** The atoms the X protocol predefines (PRIMARY = 1 … WM_TRANSIENT_FOR = 68): the same on every server. */
const LAST_PREDEFINED_ATOM = 68;

/**
 * Opens a connection to `display` (`:0`, `host:1.0`) through the pure-JS `x11` package, loaded on
 * first use so a Koto without X11 features never pays for it. Rejects with an X11ConnectError;
 * never throws from a socket callback, whatever the server or the cookie file does.
 */
export async function connectX11(display: string, options: ConnectX11Options = {}): Promise<X11Connection> {
  const { signal, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
  if (signal?.aborted) throw new X11ConnectError('stopped before connecting', 'aborted');
  const cookieProblem = await xauthorityProblem();
  if (cookieProblem) throw new X11ConnectError(cookieProblem, 'cookie');
  const { createClient } = await loadX11();
  return new Promise((resolve, reject) => {
    let settled = false;
    let client: XClient | undefined;
    const onAbort = (): void => fail(new X11ConnectError('stopped while connecting', 'aborted'));
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      client?.stream?.destroy();
      reject(err instanceof X11ConnectError ? err : new X11ConnectError(describe(err), 'refused', { cause: err }));
    };
    const timer = setTimeout(() => fail(new X11ConnectError(`no answer within ${timeoutMs / 1000} s`, 'timeout')), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // Big requests are of no use to Koto's few small requests: skip that extension's round trip.
      client = createClient({ display, disableBigRequests: true }, (err, info) => {
        if (err) return fail(err);
        if (settled) {
          // Connected only after the caller gave up on it: nobody will use or close it.
          client?.stream?.destroy();
          return;
        }
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        // Set when the socket opened (XClient.init); no request has been sent yet.
        client!.atoms = ownAtoms(client!.atoms);
        const root = (info.screen[Number(client!.screenNum)] ?? info.screen[0])?.root ?? 0;
        resolve({ client: client!, info, root });
      });
    } catch (err) {
      // A DISPLAY the package cannot parse ("Cannot parse display") throws synchronously.
      fail(new X11ConnectError(describe(err), 'display', { cause: err }));
      return;
    }
    // The handshake reports a refused connection (authorisation) as an 'error' event, not to the
    // callback; with no listener it would be thrown from the socket's data handler.
    client.on('error', fail);
  });
}

/** The `x11` package is an optional dependency of koto-voice (`npm install --omit=optional` leaves it out). */
async function loadX11(): Promise<typeof import('x11')> {
  try {
    return await import('x11');
  } catch (err) {
    if (isMissingModule(err, 'x11')) {
      throw new X11ConnectError('the x11 package is not installed (an optional dependency of koto-voice: `npm install x11`)', 'missing', {
        cause: err,
      });
    }
    throw err;
  }
}

/** A request with a reply, as a promise; the callback returns true so the client does not also emit the error. */
export function x11Request<T>(send: (cb: (err: XError | Error | null | undefined, value: T) => unknown) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    send((err, value) => {
      if (err) reject(err);
      else resolve(value);
      return true;
    });
  });
}

/** An X protocol error (BadAccess, BadValue…) as the package delivers it, not a socket or library error. */
export function isXError(err: unknown): err is XError {
  return err instanceof Error && typeof (err as Partial<XError>).error === 'number';
}

/**
 * The `x11` package reads the cookie file itself — from this process's XAUTHORITY, else
 * ~/.Xauthority, else ~/Xauthority — and throws from inside a file callback on any error but
 * "missing", which would take the whole process down (and reads a device such as /dev/zero
 * forever). So the file it will pick is checked here first.
 */
export async function xauthorityProblem(env: Readonly<NodeJS.ProcessEnv> = process.env): Promise<string | undefined> {
  const explicit = env.XAUTHORITY;
  const candidates = explicit ? [explicit] : [path.join(os.homedir(), '.Xauthority'), path.join(os.homedir(), 'Xauthority')];
  for (const file of candidates) {
    try {
      if (!(await stat(file)).isFile()) return `the X cookie file ${file} is not a regular file`;
      await access(file, constants.R_OK);
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return `the X cookie file ${file} cannot be read (${describe(err)})`;
    }
  }
  return undefined;
}

/**
 * The `x11` package caches InternAtom answers in ONE object shared by every client of the
 * process, whatever server each talks to: an atom learnt from one X server (a session that
 * ended, another display) would be sent to the next as if it were its own. Each connection
 * gets its own cache, seeded with the predefined atoms only.
 */
function ownAtoms(shared: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(shared).filter(([, atom]) => atom > 0 && atom <= LAST_PREDEFINED_ATOM));
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
