/**
 * Wayland compositors that tell a client which window has the focus, through their own tools:
 *
 *   sway      `swaymsg -t get_tree`: the focused node's app_id (Wayland) or X11 class (XWayland)
 *   Hyprland  `hyprctl activewindow -j`
 *   KDE       `kdotool` (a third-party xdotool for KWin, through KWin scripting), if installed
 *
 * The parsers are separate from the calls so recorded answers can be tested without the compositor.
 */
import type { FocusedWindow } from 'koto-voice';
import { ask, findTool } from './tools.ts';

interface SwayNode {
  id?: number;
  focused?: boolean;
  name?: string | null;
  app_id?: string | null;
  pid?: number;
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

/** The focused window in `swaymsg -t get_tree` output; undefined when a workspace or output has the focus. Throws on text that is not JSON. */
export function parseSwayTree(json: string): FocusedWindow | undefined {
  const node = focusedNode(JSON.parse(json) as SwayNode);
  // A focused workspace or output (nothing focused in it) has neither an app id nor X11 properties.
  const app = node?.app_id || node?.window_properties?.class;
  if (!node || !app) return undefined;
  return {
    app,
    instance: node.window_properties?.instance || undefined,
    title: node.name ?? node.window_properties?.title ?? '',
    pid: typeof node.pid === 'number' && node.pid > 0 ? node.pid : undefined,
    id: typeof node.id === 'number' ? String(node.id) : undefined,
    desktop: 'sway',
  };
}

/** The window in `hyprctl activewindow -j` output; undefined for `{}` (nothing focused) or "Invalid". */
export function parseHyprlandActiveWindow(json: string): FocusedWindow | undefined {
  const text = json.trim();
  if (!text.startsWith('{')) return undefined;
  const window = JSON.parse(text) as { class?: string; initialClass?: string; title?: string; pid?: number; address?: string };
  const app = window.class || window.initialClass;
  if (!app) return undefined;
  return {
    app,
    instance: window.initialClass && window.initialClass !== app ? window.initialClass : undefined,
    title: window.title ?? '',
    pid: typeof window.pid === 'number' && window.pid > 0 ? window.pid : undefined,
    id: window.address || undefined,
    desktop: 'hyprland',
  };
}

export async function viaSway(env: Readonly<NodeJS.ProcessEnv>, signal: AbortSignal): Promise<FocusedWindow | undefined> {
  const swaymsg = findTool('swaymsg', env);
  return swaymsg ? parseSwayTree(await ask(swaymsg, ['-r', '-t', 'get_tree'], env, signal)) : undefined;
}

export async function viaHyprland(env: Readonly<NodeJS.ProcessEnv>, signal: AbortSignal): Promise<FocusedWindow | undefined> {
  const hyprctl = findTool('hyprctl', env);
  return hyprctl ? parseHyprlandActiveWindow(await ask(hyprctl, ['activewindow', '-j'], env, signal)) : undefined;
}

/**
 * KDE Plasma on Wayland: kdotool asks KWin through a script. Its window id is what every other
 * kdotool command takes; the class is the app id (`org.kde.konsole`) or an XWayland class.
 */
export async function viaKdotool(env: Readonly<NodeJS.ProcessEnv>, signal: AbortSignal): Promise<FocusedWindow | undefined> {
  const kdotool = findTool('kdotool', env);
  if (!kdotool) return undefined;
  const id = (await ask(kdotool, ['getactivewindow'], env, signal)).trim();
  if (!id) return undefined;
  const [app, title, pid] = await Promise.all([
    ask(kdotool, ['getwindowclassname', id], env, signal).then((s) => s.trim()),
    ask(kdotool, ['getwindowname', id], env, signal).then(
      (s) => s.replace(/\n$/, ''),
      () => '',
    ),
    ask(kdotool, ['getwindowpid', id], env, signal).then(
      (s) => Number.parseInt(s.trim(), 10),
      () => Number.NaN,
    ),
  ]);
  if (!app) return undefined;
  return { app, title, pid: Number.isInteger(pid) && pid > 0 ? pid : undefined, id, desktop: 'kde' };
}
