/**
 * Which application has the keyboard focus: what a paste is aimed at (a terminal needs another
 * key than Ctrl+V), and what per-application settings can key on.
 *
 *   X11       the window manager's _NET_ACTIVE_WINDOW on the root window (else the core input
 *             focus), its WM_CLASS and title: the X protocol itself, through the pure-JS `x11`
 *             package (no xdotool, no xprop), loaded on first use
 *   sway      `swaymsg -t get_tree`: the focused node's app_id (Wayland) or X11 class (XWayland)
 *   Hyprland  `hyprctl activewindow -j`
 *
 * Other Wayland compositors (GNOME, KDE) give clients no way to ask. Every failure — no answer
 * within the deadline, a tool missing, a window gone meanwhile — is "unknown" (undefined), never
 * an error: the caller decides what an unknown target means.
 */
import type { XClient, XDisplay, XError, XProperty } from 'x11';
import { findTool, runTool, type Desktop } from './desktop.ts';

export interface FocusedWindow {
  /** X11: the class part of WM_CLASS ("XTerm"); sway: the app id, or the X11 class of an XWayland window; Hyprland: the class. */
  readonly app: string;
  /** X11: the instance part of WM_CLASS ("xterm", settable with -name); sway: an XWayland window's instance. */
  readonly instance?: string | undefined;
  /** The window title (may be empty). */
  readonly title: string;
  readonly via: 'x11' | 'sway' | 'hyprland';
}

/** Bounds the whole lookup: it runs before every paste, and an unknown target only costs a warning. */
export const FOCUS_TIMEOUT_MS = 1500;

/**
 * The focused window, or undefined when it cannot be known (no window focused, no way to ask on
 * this desktop, or no answer within `timeoutMs`). Never throws.
 */
export async function focusedWindow(
  desktop: Desktop,
  env: NodeJS.ProcessEnv = process.env,
  signal?: AbortSignal,
  timeoutMs: number = FOCUS_TIMEOUT_MS,
): Promise<FocusedWindow | undefined> {
  if (signal?.aborted) return undefined;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  const onAbort = () => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const stopped = new Promise<undefined>((resolve) => stop.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
  try {
    const asked = lookup(desktop, env, stop.signal).catch(() => undefined);
    return await Promise.race([asked, stopped]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    // Ends whatever is still running (an X connection, a helper process).
    stop.abort();
  }
}

function lookup(desktop: Desktop, env: NodeJS.ProcessEnv, stop: AbortSignal): Promise<FocusedWindow | undefined> {
  if (desktop === 'x11') {
    const display = env.DISPLAY?.trim();
    return display ? viaX11(display, stop) : Promise.resolve(undefined);
  }
  if (desktop === 'wayland') {
    if (env.SWAYSOCK) return viaSway(env, stop);
    if (env.HYPRLAND_INSTANCE_SIGNATURE) return viaHyprland(env, stop);
  }
  return Promise.resolve(undefined);
}

// ---------------------------------------------------------------------------------------------
// X11

const ANY_PROPERTY_TYPE = 0;
const POINTER_ROOT = 1;
const ATOM_STRING = 31;
const ATOM_WM_NAME = 39;
const ATOM_WM_CLASS = 67;
/** Guards against a malformed tree; real clients sit a few levels below a frame. */
const MAX_DEPTH = 8;
const MAX_WINDOWS_SEARCHED = 64;

/** A request with a reply, as a promise; the callback returns true so the client does not also emit the error. */
function ask<T>(send: (cb: (err: XError | Error | null | undefined, value: T) => unknown) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    send((err, value) => {
      if (err) reject(err);
      else resolve(value);
      return true;
    });
  });
}

async function connectX11(display: string, stop: AbortSignal): Promise<{ client: XClient; info: XDisplay }> {
  // Loaded here, not at the top: only a paste on X11 needs it.
  const { createClient } = await import('x11');
  return new Promise((resolve, reject) => {
    let client: XClient | undefined;
    const fail = (err: unknown) => {
      client?.stream?.destroy();
      reject(err);
    };
    if (stop.aborted) return fail(new Error('stopped'));
    stop.addEventListener('abort', () => fail(new Error('stopped')), { once: true });
    try {
      client = createClient({ display, disableBigRequests: true }, (err, info) => {
        if (err) return fail(err);
        // Set when the socket opened (XClient.init); no request has been sent yet.
        client!.atoms = ownAtoms(client!.atoms);
        resolve({ client: client!, info });
      });
    } catch (err) {
      // A DISPLAY the package cannot parse throws synchronously.
      fail(err);
      return;
    }
    // A refused connection (authorisation) arrives as an 'error' event; a late X error is ignored.
    client.on('error', fail);
  });
}

/** The atoms the X protocol predefines (PRIMARY = 1 … WM_TRANSIENT_FOR = 68): the same on every server. */
const LAST_PREDEFINED_ATOM = 68;

/**
 * The `x11` package caches InternAtom answers in ONE object shared by every client of the
 * process, whatever server each talks to: an atom learnt from one X server (a session that
 * ended, another display) would be sent to the next as if it were its own. Each connection here
 * gets its own cache, seeded with the predefined atoms only.
 */
function ownAtoms(shared: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(shared).filter(([, atom]) => atom > 0 && atom <= LAST_PREDEFINED_ATOM));
}

async function viaX11(display: string, stop: AbortSignal): Promise<FocusedWindow | undefined> {
  const { client, info } = await connectX11(display, stop);
  // Only queries were sent: nothing to flush before the socket goes.
  stop.addEventListener('abort', () => client.stream?.destroy(), { once: true });
  try {
    const root = (info.screen[Number(client.screenNum)] ?? info.screen[0])!.root;
    const active = await activeWindow(client, root);
    // The window manager says nothing is active (a desktop, an empty workspace): nothing to aim at.
    if (active === 0) return undefined;
    // A window manager that died leaves a stale _NET_ACTIVE_WINDOW behind: then ask the server.
    const found = (active && (await clientWindow(client, root, active).catch(() => undefined))) || (await focusedByServer(client, root));
    if (!found) return undefined;
    return { app: found.wmClass.app, instance: found.wmClass.instance, title: await windowTitle(client, found.window), via: 'x11' };
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

// ---------------------------------------------------------------------------------------------
// Wayland compositors that answer

interface SwayNode {
  focused?: boolean;
  name?: string | null;
  app_id?: string | null;
  window_properties?: { class?: string; instance?: string; title?: string };
  nodes?: SwayNode[];
  floating_nodes?: SwayNode[];
}

function focusedNode(node: SwayNode, depth = 0): SwayNode | undefined {
  if (node.focused) return node;
  if (depth > 64) return undefined;
  for (const child of [...(node.nodes ?? []), ...(node.floating_nodes ?? [])]) {
    const found = focusedNode(child, depth + 1);
    if (found) return found;
  }
  return undefined;
}

async function viaSway(env: NodeJS.ProcessEnv, stop: AbortSignal): Promise<FocusedWindow | undefined> {
  const swaymsg = findTool('swaymsg', env);
  if (!swaymsg) return undefined;
  const { stdout } = await runTool(swaymsg, ['-r', '-t', 'get_tree'], { signal: stop, timeoutMs: FOCUS_TIMEOUT_MS, env });
  const node = focusedNode(JSON.parse(stdout) as SwayNode);
  // A focused workspace or output (nothing focused in it) has neither an app id nor X11 properties.
  const app = node?.app_id || node?.window_properties?.class;
  if (!node || !app) return undefined;
  return { app, instance: node.window_properties?.instance, title: node.name ?? node.window_properties?.title ?? '', via: 'sway' };
}

async function viaHyprland(env: NodeJS.ProcessEnv, stop: AbortSignal): Promise<FocusedWindow | undefined> {
  const hyprctl = findTool('hyprctl', env);
  if (!hyprctl) return undefined;
  const { stdout } = await runTool(hyprctl, ['activewindow', '-j'], { signal: stop, timeoutMs: FOCUS_TIMEOUT_MS, env });
  const window = JSON.parse(stdout) as { class?: string; initialClass?: string; title?: string };
  const app = window.class || window.initialClass;
  if (!app) return undefined;
  return { app, instance: window.initialClass && window.initialClass !== app ? window.initialClass : undefined, title: window.title ?? '', via: 'hyprland' };
}
