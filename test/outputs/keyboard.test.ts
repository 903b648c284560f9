/** How a shortcut becomes each tool's arguments (the macOS ones cannot run on Linux CI: checked here as text). */
import { describe, expect, it } from 'vitest';
import { appleKeystroke } from '../../plugins/outputs/desktop.ts';
import {
  appleShortcutScript,
  defaultPasteShortcut,
  parseShortcut,
  shortcutSchema,
  wtypeKeyArgs,
  xdotoolKeyArgs,
  ydotoolKeyArgs,
} from '../../plugins/outputs/keyboard.ts';

describe('paste shortcuts', () => {
  it('defaults to Ctrl+V, Cmd+V on macOS', () => {
    expect(defaultPasteShortcut('x11')).toBe('ctrl+v');
    expect(defaultPasteShortcut('wayland')).toBe('ctrl+v');
    expect(defaultPasteShortcut('macos')).toBe('cmd+v');
  });

  it('maps to xdotool, wtype, ydotool (1.x codes, 0.1.x names) and AppleScript', () => {
    const ctrlV = parseShortcut('ctrl+v');
    expect(xdotoolKeyArgs(ctrlV)).toEqual(['key', '--clearmodifiers', 'ctrl+v']);
    expect(wtypeKeyArgs(ctrlV)).toEqual(['-M', 'ctrl', 'v', '-m', 'ctrl']);
    expect(ydotoolKeyArgs(ctrlV, true)).toEqual(['key', '29:1', '47:1', '47:0', '29:0']);
    expect(ydotoolKeyArgs(ctrlV, false)).toEqual(['key', 'ctrl+v']);
    expect(appleShortcutScript(parseShortcut('cmd+v'))).toBe('tell application "System Events" to keystroke "v" using {command down}');

    const terminal = parseShortcut('Ctrl+Shift+V');
    expect(xdotoolKeyArgs(terminal)).toEqual(['key', '--clearmodifiers', 'ctrl+shift+v']);
    expect(wtypeKeyArgs(terminal)).toEqual(['-M', 'ctrl', '-M', 'shift', 'v', '-m', 'shift', '-m', 'ctrl']);
    expect(ydotoolKeyArgs(terminal, true)).toEqual(['key', '29:1', '42:1', '47:1', '47:0', '42:0', '29:0']);

    const insert = parseShortcut('shift+insert');
    expect(xdotoolKeyArgs(insert)).toEqual(['key', '--clearmodifiers', 'shift+Insert']);
    expect(ydotoolKeyArgs(insert, true)).toEqual(['key', '42:1', '110:1', '110:0', '42:0']);
    expect(ydotoolKeyArgs(parseShortcut('alt+super+1'), true)).toEqual(['key', '56:1', '125:1', '2:1', '2:0', '125:0', '56:0']);
    expect(appleShortcutScript(insert)).toBe('tell application "System Events" to key code 114 using {shift down}');
    expect(wtypeKeyArgs(parseShortcut('super+return'))).toEqual(['-M', 'logo', '-k', 'Return', '-m', 'logo']);
  });

  it('accepts modifier aliases and refuses anything that is not a combination', () => {
    expect(parseShortcut('command+option+v')).toEqual({ modifiers: ['super', 'alt'], key: 'v' });
    for (const good of ['ctrl+v', 'shift+insert', 'cmd+v', 'ctrl+shift+1', 'v']) expect(shortcutSchema.safeParse(good).success).toBe(true);
    for (const bad of ['', 'ctrl+', 'ctrl+vv', 'hyper+v', 'ctrl v', 'ctrl+v; rm -rf /'])
      expect(shortcutSchema.safeParse(bad).success).toBe(false);
  });
});

describe('AppleScript text', () => {
  it('escapes quotes and backslashes (the script goes to osascript on stdin, not argv)', () => {
    expect(appleKeystroke('say "hi" \\ there')).toBe('tell application "System Events" to keystroke "say \\"hi\\" \\\\ there"');
  });
});
