/**
 * Terminal emulators, by the names their windows carry (X11 WM_CLASS class or instance, Wayland
 * app id), and the key that pastes in each. A terminal passes Ctrl+V to the program inside it
 * as a literal ^V, so pressing it there pastes nothing while looking like success.
 *
 * Names are compared case-insensitively. Extend the list with `paste.terminals`, or set a key per
 * application with `paste.shortcuts` (docs/configuration.md).
 */
import type { FocusedWindow } from 'koto-voice';

/**
 * Terminals whose default key bindings have no key that pastes the CLIPBOARD: Shift+Insert pastes
 * the PRIMARY selection there (xterm's `insert-selection(SELECT)`, rxvt's and st's `selpaste`),
 * which the paste output sets too.
 */
const PRIMARY_PASTE: readonly string[] = [
  'xterm',
  'uxterm',
  'urxvt',
  'urxvtc',
  'rxvt',
  'rxvt-unicode',
  'st',
  'st-256color',
  'eterm',
  'aterm',
  'mrxvt',
];

/** Terminals that paste the CLIPBOARD with Ctrl+Shift+V. */
const CLIPBOARD_PASTE: readonly string[] = [
  'kitty',
  'alacritty',
  'foot',
  'footclient',
  'gnome-terminal',
  'gnome-terminal-server',
  'org.gnome.terminal',
  'org.gnome.console',
  'kgx',
  'org.gnome.ptyxis',
  'ptyxis',
  'konsole',
  'org.kde.konsole',
  'yakuake',
  'org.kde.yakuake',
  'xfce4-terminal',
  'lxterminal',
  'terminator',
  'tilix',
  'com.gexperts.tilix',
  'wezterm',
  'wezterm-gui',
  'org.wezfurlong.wezterm',
  'ghostty',
  'com.mitchellh.ghostty',
  'mate-terminal',
  'qterminal',
  'sakura',
  'terminology',
  'guake',
  'tilda',
  'roxterm',
  'termite',
  'cool-retro-term',
  'deepin-terminal',
  'io.elementary.terminal',
  'com.raggesilver.blackbox',
  'contour',
  'rio',
];

export const SHIFT_INSERT = 'shift+insert';
export const CTRL_SHIFT_V = 'ctrl+shift+v';

const BUILT_IN: ReadonlyMap<string, string> = new Map([
  ...PRIMARY_PASTE.map((name) => [name, SHIFT_INSERT] as const),
  ...CLIPBOARD_PASTE.map((name) => [name, CTRL_SHIFT_V] as const),
]);

/** The names a window answers to: its class (app id) and, on X11, its instance. */
export function windowNames(window: FocusedWindow): string[] {
  return [window.app, window.instance].filter((name): name is string => Boolean(name)).map((name) => name.toLowerCase());
}

/**
 * The paste key of the terminal that owns `window`, or undefined when it is not a known terminal.
 * `extra` (from `paste.terminals`) are terminals that paste with Ctrl+Shift+V.
 */
export function terminalPasteShortcut(window: FocusedWindow, extra: readonly string[] = []): string | undefined {
  const added = new Set(extra.map((name) => name.toLowerCase()));
  for (const name of windowNames(window)) {
    const known = BUILT_IN.get(name);
    if (known) return known;
    if (added.has(name)) return CTRL_SHIFT_V;
  }
  return undefined;
}
