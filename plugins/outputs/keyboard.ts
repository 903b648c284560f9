/**
 * Keystrokes into the focused window: a paste shortcut, or the text itself.
 *   X11      xdotool
 *   Wayland  wtype (virtual-keyboard protocol: sway, Hyprland, KDE…), then ydotool (uinput: GNOME too)
 *   macOS    osascript (System Events; needs the Accessibility permission)
 */
import { z } from 'zod';
import { keyNamed, MODIFIER_EVDEV } from 'koto-voice';
import { appleKeystroke, DesktopError, findTool, keystrokeHint, NO_DISPLAY, runTool, utf8Env, type Desktop } from './desktop.ts';
import { typeOnX11 } from './x11-typer.ts';

export type Modifier = 'ctrl' | 'shift' | 'alt' | 'super';

const MODIFIERS: Readonly<Record<string, Modifier>> = {
  ctrl: 'ctrl',
  control: 'ctrl',
  shift: 'shift',
  alt: 'alt',
  option: 'alt',
  super: 'super',
  cmd: 'super',
  command: 'super',
  meta: 'super',
  win: 'super',
  logo: 'super',
};

const SHORTCUT_PATTERN = new RegExp(`^(?:(?:${Object.keys(MODIFIERS).join('|')})\\+)*(?:[a-z0-9]|insert|enter|return|tab|space)$`, 'i');

/** A key combination such as `ctrl+v`, `ctrl+shift+v` (terminals) or `shift+insert`. */
export const shortcutSchema = z
  .string()
  .regex(SHORTCUT_PATTERN, 'expected modifiers and one key joined by "+", e.g. "ctrl+v", "ctrl+shift+v" or "shift+insert"');

export interface Shortcut {
  readonly modifiers: readonly Modifier[];
  /** A letter, a digit, or one of insert, enter, tab, space. */
  readonly key: string;
}

export function parseShortcut(text: string): Shortcut {
  if (!SHORTCUT_PATTERN.test(text)) throw new DesktopError(`"${text}" is not a key combination`, undefined, 'unsupported');
  const parts = text.toLowerCase().split('+');
  const key = parts.pop()!;
  return { modifiers: [...new Set(parts.map((part) => MODIFIERS[part]!))], key: key === 'return' ? 'enter' : key };
}

/** The paste shortcut of the platform: Cmd+V on macOS, Ctrl+V elsewhere. */
export function defaultPasteShortcut(desktop: Desktop): string {
  return desktop === 'macos' ? 'cmd+v' : 'ctrl+v';
}

const X_KEYSYMS: Readonly<Record<string, string>> = { insert: 'Insert', enter: 'Return', tab: 'Tab', space: 'space' };

export function xdotoolKeyArgs(shortcut: Shortcut): string[] {
  return ['key', '--clearmodifiers', [...shortcut.modifiers, X_KEYSYMS[shortcut.key] ?? shortcut.key].join('+')];
}

const WTYPE_MODIFIERS: Readonly<Record<Modifier, string>> = { ctrl: 'ctrl', shift: 'shift', alt: 'alt', super: 'logo' };

/** `wtype -M ctrl v -m ctrl`: modifiers pressed, the key typed, modifiers released. */
export function wtypeKeyArgs(shortcut: Shortcut): string[] {
  const modifiers = shortcut.modifiers.map((m) => WTYPE_MODIFIERS[m]);
  const key = shortcut.key.length === 1 ? [shortcut.key] : ['-k', X_KEYSYMS[shortcut.key]!];
  return [...modifiers.flatMap((m) => ['-M', m]), ...key, ...[...modifiers].reverse().flatMap((m) => ['-m', m])];
}

/**
 * ydotool 1.x takes raw codes (`key 29:1 47:1 47:0 29:0`); 0.1.x (Debian 12, Ubuntu 22.04)
 * takes names (`key ctrl+v`) and would read `29:1` as the key "2".
 */
export function ydotoolKeyArgs(shortcut: Shortcut, modern: boolean): string[] {
  if (!modern) return ['key', [...shortcut.modifiers, shortcut.key].join('+')];
  // Linux input event codes (linux/input-event-codes.h, US layout): the left modifier keys, and the key as koto-voice knows it.
  const codes = [...shortcut.modifiers.map((m) => MODIFIER_EVDEV[m][0]!), keyNamed(shortcut.key)!.evdev];
  return ['key', ...codes.map((c) => `${c}:1`), ...[...codes].reverse().map((c) => `${c}:0`)];
}

const APPLE_MODIFIERS: Readonly<Record<Modifier, string>> = {
  ctrl: 'control down',
  shift: 'shift down',
  alt: 'option down',
  super: 'command down',
};
const APPLE_KEY_CODES: Readonly<Record<string, number>> = { enter: 36, tab: 48, space: 49, insert: 114 };

export function appleShortcutScript(shortcut: Shortcut): string {
  const using = shortcut.modifiers.length ? `{${shortcut.modifiers.map((m) => APPLE_MODIFIERS[m]).join(', ')}}` : undefined;
  const code = APPLE_KEY_CODES[shortcut.key];
  if (code === undefined) return appleKeystroke(shortcut.key, using);
  return `tell application "System Events" to key code ${code}${using ? ` using ${using}` : ''}`;
}

/** Whether an installed ydotool is 1.x, asked once per binary. */
const ydotoolVersions = new Map<string, Promise<boolean>>();

function isModernYdotool(file: string): Promise<boolean> {
  let known = ydotoolVersions.get(file);
  if (!known) {
    // 1.x: "Usage: ydotool [OPTION] <cmd> <args>" … "YDOTOOL_SOCKET" (stdout, exit 0).
    // 0.1.x: "Usage: ydotool <cmd> <args>" (stderr, exit 1).
    known = runTool(file, ['--help'], { timeoutMs: 2000, check: false }).then(
      (r) => /YDOTOOL_SOCKET|\[OPTION\]/.test(r.stdout + r.stderr),
      () => true,
    );
    ydotoolVersions.set(file, known);
  }
  return known;
}

interface Attempt {
  readonly tool: string;
  readonly run: (file: string) => Promise<unknown>;
}

/** Tries each tool in turn; throws a DesktopError naming every failure and what to install. */
async function firstThatWorks(desktop: Desktop, attempts: readonly Attempt[]): Promise<string> {
  const missing: string[] = [];
  const failures: string[] = [];
  for (const attempt of attempts) {
    const file = findTool(attempt.tool);
    if (!file) {
      missing.push(attempt.tool);
      continue;
    }
    try {
      await attempt.run(file);
      return attempt.tool;
    } catch (err) {
      if (err instanceof DesktopError && err.reason === 'aborted') throw err;
      failures.push((err as Error).message);
    }
  }
  const notInstalled =
    missing.length === 0 ? '' : missing.length === 1 ? `${missing[0]} is not installed` : `neither ${missing.join(' nor ')} is installed`;
  if (failures.length === 0) throw new DesktopError(notInstalled, keystrokeHint(desktop), 'missing');
  // An installed tool that failed says why itself; an install hint only helps when one is missing.
  const hint = missing.length > 0 ? keystrokeHint(desktop) : desktop === 'wayland' ? 'ydotool needs ydotoold running' : undefined;
  throw new DesktopError([...failures, notInstalled].filter(Boolean).join('; '), hint);
}

function unsupported(desktop: Desktop): DesktopError {
  return desktop === 'none'
    ? new DesktopError(`${NO_DISPLAY} to send keystrokes to`, keystrokeHint(desktop), 'unsupported')
    : new DesktopError(`keystrokes are not supported on ${process.platform}`, keystrokeHint(desktop), 'unsupported');
}

export interface KeystrokeOptions {
  readonly signal?: AbortSignal | undefined;
  readonly timeoutMs: number;
}

/** wtype waits 150 ms after creating its keyboard, then taps a key that writes nothing (Shift_L). */
const WTYPE_WARM_UP: readonly string[] = ['-s', '150', '-k', 'Shift_L'];

/** Presses the shortcut in the focused window; resolves with the tool that did it. */
export function pressShortcut(desktop: Desktop, shortcut: Shortcut, options: KeystrokeOptions): Promise<string> {
  const run = { signal: options.signal, timeoutMs: options.timeoutMs, env: utf8Env() };
  switch (desktop) {
    case 'x11':
      return firstThatWorks(desktop, [{ tool: 'xdotool', run: (file) => runTool(file, xdotoolKeyArgs(shortcut), run) }]);
    case 'wayland':
      return firstThatWorks(desktop, [
        // The same start as typing (wtypeTypeArgs): a new virtual keyboard's first key can be lost.
        { tool: 'wtype', run: (file) => runTool(file, [...WTYPE_WARM_UP, ...wtypeKeyArgs(shortcut)], run) },
        { tool: 'ydotool', run: async (file) => runTool(file, ydotoolKeyArgs(shortcut, await isModernYdotool(file)), run) },
      ]);
    case 'macos':
      return firstThatWorks(desktop, [
        { tool: 'osascript', run: (file) => runTool(file, [], { ...run, input: appleShortcutScript(shortcut) }) },
      ]);
    default:
      return Promise.reject(unsupported(desktop));
  }
}

export interface TypeOptions extends KeystrokeOptions {
  /** Milliseconds between keystrokes. */
  readonly keyDelayMs: number;
  /** X11: `xtest` (built in, xdotool only when it cannot connect) or `xdotool` alone. */
  readonly x11?: 'xtest' | 'xdotool' | undefined;
  /** Wayland: milliseconds wtype waits after creating its keyboard, before the first key. */
  readonly waylandStartDelayMs?: number | undefined;
  readonly debug?: ((message: string) => void) | undefined;
}

/**
 * wtype reading the text from stdin (`-`). Its first key goes out right after it created its
 * virtual keyboard, and the compositor (sway 1.7 with foot: lost in 21 of 38 runs) may not
 * have the new keyboard's keymap in effect yet: the first character was lost. So wtype waits
 * `waylandStartDelayMs` and then types a key that writes nothing (Shift_L) before the text.
 * Newline and tab are wtype's Return and Tab keys.
 */
export function wtypeTypeArgs(options: Pick<TypeOptions, 'keyDelayMs' | 'waylandStartDelayMs'>): string[] {
  const start = options.waylandStartDelayMs ?? 150;
  // wtype rejects 0 for both -s and -d.
  return [
    ...(start > 0 ? ['-s', String(start)] : []),
    ...(options.keyDelayMs > 0 ? ['-d', String(options.keyDelayMs)] : []),
    '-k',
    'Shift_L',
    '-',
  ];
}

/**
 * Types the text into the focused window. The text goes through stdin to every tool (xdotool,
 * wtype, ydotool, osascript) or over the X connection (XTEST), never in argv, where every local
 * user could read it.
 */
export function typeText(desktop: Desktop, text: string, options: TypeOptions): Promise<string> {
  const run = { signal: options.signal, timeoutMs: options.timeoutMs, env: utf8Env(), secret: text };
  switch (desktop) {
    case 'x11': {
      const xdotool = () =>
        firstThatWorks(desktop, [
          {
            tool: 'xdotool',
            run: (file) =>
              runTool(file, ['type', '--clearmodifiers', '--delay', String(options.keyDelayMs), '--file', '-'], { ...run, input: text }),
          },
        ]);
      return options.x11 === 'xdotool' ? xdotool() : typeOnX11(text, options, xdotool);
    }
    case 'wayland':
      return firstThatWorks(desktop, [
        { tool: 'wtype', run: (file) => runTool(file, wtypeTypeArgs(options), { ...run, input: text }) },
        // `--file /dev/stdin` reads the text from stdin in ydotool 0.1.x and 1.x alike.
        { tool: 'ydotool', run: (file) => runTool(file, ['type', '--file', '/dev/stdin'], { ...run, input: text }) },
      ]);
    case 'macos':
      return firstThatWorks(desktop, [{ tool: 'osascript', run: (file) => runTool(file, [], { ...run, input: appleKeystroke(text) }) }]);
    default:
      return Promise.reject(unsupported(desktop));
  }
}
