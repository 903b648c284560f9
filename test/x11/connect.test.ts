/**
 * `koto-voice/x11`'s connection helper, which every X11 plugin (hotkey, typing, focus) opens its
 * connections with: the failures a desktop throws at a long-running process end in an
 * X11ConnectError with a reason, never a crash or a hang; each connection keeps its own atoms.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectX11, X11ConnectError, x11Request } from 'koto-voice/x11';
import { startXvfb, type Xvfb } from '../outputs/x11.ts';

/** A TCP "X server" that accepts connections and never says a word (display 127.0.0.1:N = port 6000+N). */
async function silentServer(): Promise<{ display: string; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    // Flowing, so the client's FIN is read and the socket closes.
    socket.resume();
    socket.on('close', () => sockets.delete(socket));
  });
  for (let n = 150; n < 400; n++) {
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(6000 + n, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      return {
        display: `127.0.0.1:${n}`,
        connections: () => sockets.size,
        close: () =>
          new Promise((resolve) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => resolve());
          }),
      };
    }
  }
  throw new Error('no free port for a silent X server');
}

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(X11ConnectError);
  return (err as X11ConnectError).reason;
}

describe('connectX11', () => {
  it('a display that accepts the connection and never answers times out and closes the socket', async () => {
    const silent = await silentServer();
    try {
      expect(await reasonOf(connectX11(silent.display, { timeoutMs: 300 }))).toBe('timeout');
      await expect.poll(() => silent.connections()).toBe(0);
    } finally {
      await silent.close();
    }
  });

  it('an abort while the display is silent stops the attempt and closes the socket', async () => {
    const silent = await silentServer();
    try {
      const stop = new AbortController();
      const attempt = connectX11(silent.display, { signal: stop.signal });
      await expect.poll(() => silent.connections()).toBe(1);
      stop.abort();
      expect(await reasonOf(attempt)).toBe('aborted');
      await expect.poll(() => silent.connections()).toBe(0);
      expect(await reasonOf(connectX11(silent.display, { signal: AbortSignal.abort() }))).toBe('aborted');
    } finally {
      await silent.close();
    }
  });

  it('a DISPLAY that is not a display name, a refused one and an unusable cookie file each have their reason', async () => {
    expect(await reasonOf(connectX11('not-a-display'))).toBe('display');
    // Port 6000 + 4321 on loopback: nothing listens there.
    expect(await reasonOf(connectX11('127.0.0.1:4321'))).toBe('refused');
    const saved = process.env.XAUTHORITY;
    process.env.XAUTHORITY = '/dev/zero'; // the package would read it forever
    try {
      const err = (await connectX11(':0').catch((e: unknown) => e)) as X11ConnectError;
      expect(err.reason).toBe('cookie');
      expect(err.message).toBe('the X cookie file /dev/zero is not a regular file');
    } finally {
      if (saved === undefined) delete process.env.XAUTHORITY;
      else process.env.XAUTHORITY = saved;
    }
  });

  describe('against a real X server', () => {
    let xvfb: Xvfb;
    beforeAll(async () => {
      xvfb = await startXvfb();
    });
    afterAll(async () => {
      await xvfb?.stop();
    });

    it('gives the root window, and atoms one connection learns are not assumed by the next', async () => {
      const a = await connectX11(xvfb.display);
      const b = await connectX11(xvfb.display);
      try {
        expect(a.root).toBeGreaterThan(0);
        expect(b.root).toBe(a.root);
        const atom = await x11Request<number>((cb) => a.client.InternAtom(false, 'KOTO_TEST_ATOM', cb));
        expect(atom).toBeGreaterThan(68);
        expect(a.client.atoms.KOTO_TEST_ATOM).toBe(atom);
        // The package would share one cache: b would send a's answer to its own server unasked.
        expect(b.client.atoms.KOTO_TEST_ATOM).toBeUndefined();
        expect(b.client.atoms.WM_NAME).toBe(39);
      } finally {
        a.client.stream?.destroy();
        b.client.stream?.destroy();
      }
    });
  });
});
