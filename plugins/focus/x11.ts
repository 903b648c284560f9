/**
 * X11: the window manager's _NET_ACTIVE_WINDOW on the root window (else the core input focus),
 * its WM_CLASS, title (_NET_WM_NAME, else WM_NAME) and _NET_WM_PID: the X protocol itself,
 * through `koto-voice/x11` (no xdotool, no xprop).
 */
import type { FocusedWindow } from 'koto-voice';
import { connectX11, x11Request as ask, type XClient, type XProperty } from 'koto-voice/x11';

const ANY_PROPERTY_TYPE = 0;
const POINTER_ROOT = 1;
const ATOM_STRING = 31;
const ATOM_WM_NAME = 39;
const ATOM_WM_CLASS = 67;
/** Guards against a malformed tree; real clients sit a few levels below a frame. */
const MAX_DEPTH = 8;
const MAX_WINDOWS_SEARCHED = 64;

export async function viaX11(display: string, stop: AbortSignal): Promise<FocusedWindow | undefined> {
  const { client, root } = await connectX11(display, { signal: stop });
  // Only queries were sent: nothing to flush before the socket goes.
  stop.addEventListener('abort', () => client.stream?.destroy(), { once: true });
  try {
    const active = await activeWindow(client, root);
    // The window manager says nothing is active (a desktop, an empty workspace): nothing to aim at.
    if (active === 0) return undefined;
    // A window manager that died leaves a stale _NET_ACTIVE_WINDOW behind: then ask the server.
    const found = (active && (await clientWindow(client, root, active).catch(() => undefined))) || (await focusedByServer(client, root));
    if (!found) return undefined;
    const [title, pid] = await Promise.all([windowTitle(client, found.window), windowPid(client, found.window)]);
    return { app: found.wmClass.app, instance: found.wmClass.instance, title, pid, id: `0x${found.window.toString(16)}`, desktop: 'x11' };
  } finally {
    client.stream?.destroy();
  }
}

const getProperty = (client: XClient, window: number, property: number, longs: number) =>
  ask<XProperty>((cb) => client.GetProperty(0, window, property, ANY_PROPERTY_TYPE, 0, longs, cb));

/**
 * The window manager's _NET_ACTIVE_WINDOW: a window, 0 when it says nothing is active, or
 * undefined when no window manager keeps the property.
 */
async function activeWindow(client: XClient, root: number): Promise<number | undefined> {
  const netActive = await ask<number>((cb) => client.InternAtom(true, '_NET_ACTIVE_WINDOW', cb));
  if (!netActive) return undefined;
  const active = await getProperty(client, root, netActive, 1);
  if (active.type === 0) return undefined;
  return active.format === 32 && active.data.length >= 4 ? active.data.readUInt32LE(0) : 0;
}

/** The server's input focus (no EWMH window manager), resolved to its client window. */
async function focusedByServer(client: XClient, root: number): Promise<{ window: number; wmClass: WmClass } | undefined> {
  const { focus } = await ask<{ focus: number }>((cb) => client.GetInputFocus(cb));
  if (focus === 0) return undefined;
  let start = focus;
  if (focus === POINTER_ROOT || focus === root) {
    // PointerRoot: the keyboard goes to the top-level window under the pointer.
    const { child } = await ask<{ child: number }>((cb) => client.QueryPointer(root, cb));
    if (!child) return undefined;
    start = child;
  }
  return clientWindow(client, root, start);
}

interface WmClass {
  readonly instance: string;
  readonly app: string;
}

async function wmClassOf(client: XClient, window: number): Promise<WmClass | undefined> {
  const property = await getProperty(client, window, ATOM_WM_CLASS, 64);
  if (property.type === 0 || property.format !== 8) return undefined;
  // "instance\0class\0", ISO Latin-1 (ICCCM).
  const [instance = '', app = ''] = property.data.toString('latin1').split('\0');
  return app || instance ? { instance, app: app || instance } : undefined;
}

/**
 * The client window (the one with WM_CLASS) that `start` belongs to: the focus may be on a child
 * of it (a toolkit's inner window) or, without _NET_ACTIVE_WINDOW, on a window manager's frame
 * around it.
 */
async function clientWindow(client: XClient, root: number, start: number): Promise<{ window: number; wmClass: WmClass } | undefined> {
  let top = start;
  for (let depth = 0; depth < MAX_DEPTH; depth += 1) {
    const wmClass = await wmClassOf(client, top);
    if (wmClass) return { window: top, wmClass };
    const { parent } = await ask<{ parent: number }>((cb) => client.QueryTree(top, cb));
    if (!parent || parent === root) break;
    top = parent;
  }
  let level = [top];
  let searched = 0;
  for (let depth = 0; depth < MAX_DEPTH && level.length > 0 && searched < MAX_WINDOWS_SEARCHED; depth += 1) {
    const next: number[] = [];
    for (const window of level) {
      const { children } = await ask<{ children: number[] }>((cb) => client.QueryTree(window, cb));
      for (const child of children) {
        if (++searched > MAX_WINDOWS_SEARCHED) return undefined;
        const wmClass = await wmClassOf(client, child);
        if (wmClass) return { window: child, wmClass };
        next.push(child);
      }
    }
    level = next;
  }
  return undefined;
}

async function windowTitle(client: XClient, window: number): Promise<string> {
  try {
    const netWmName = await ask<number>((cb) => client.InternAtom(true, '_NET_WM_NAME', cb));
    if (netWmName) {
      const property = await getProperty(client, window, netWmName, 1024);
      if (property.type !== 0 && property.format === 8) return property.data.toString('utf8');
    }
    const property = await getProperty(client, window, ATOM_WM_NAME, 1024);
    if (property.type === 0 || property.format !== 8) return '';
    // STRING is Latin-1; COMPOUND_TEXT and UTF8_STRING read as UTF-8 (exact for ASCII and UTF-8).
    return property.data.toString(property.type === ATOM_STRING ? 'latin1' : 'utf8');
  } catch {
    return '';
  }
}

/** _NET_WM_PID, which EWMH clients set (xterm, GTK, Qt); undefined when absent. */
async function windowPid(client: XClient, window: number): Promise<number | undefined> {
  try {
    const atom = await ask<number>((cb) => client.InternAtom(true, '_NET_WM_PID', cb));
    if (!atom) return undefined;
    const property = await getProperty(client, window, atom, 1);
    if (property.type === 0 || property.format !== 32 || property.data.length < 4) return undefined;
    const pid = property.data.readUInt32LE(0);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
