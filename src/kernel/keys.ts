/**
 * Key combinations as users write them (`ctrl+alt+space`, `rightctrl`, `super+f9`), parsed once
 * and shared by everything that names keys: the hotkey backends (an X11 keysym for a passive
 * grab, a Linux evdev code for /dev/input), config validation, and later per-app paste shortcuts.
 * Plain data, no dependencies: the config schema imports it.
 */

export type Modifier = 'ctrl' | 'alt' | 'shift' | 'super';

export interface KeyInfo {
  /** Canonical name, as status and errors show it. */
  readonly name: string;
  /** X11 keysym (X11/keysymdef.h). */
  readonly keysym: number;
  /** Linux input event code (linux/input-event-codes.h). */
  readonly evdev: number;
  /** Set for the side-specific modifier keys (`rightctrl`): usable alone as a push-to-talk key. */
  readonly modifier?: Modifier;
}

export interface KeyCombo {
  /** Modifiers that must be held, in canonical order (ctrl, alt, shift, super). */
  readonly modifiers: readonly Modifier[];
  readonly key: KeyInfo;
  /** Canonical text: `ctrl+alt+space`. */
  readonly text: string;
}

/** evdev codes of each modifier's left and right keys. */
export const MODIFIER_EVDEV: Readonly<Record<Modifier, readonly number[]>> = Object.freeze({
  ctrl: [29, 97],
  alt: [56, 100],
  shift: [42, 54],
  super: [125, 126],
});

export const MODIFIER_ORDER: readonly Modifier[] = ['ctrl', 'alt', 'shift', 'super'];

const MODIFIER_ALIASES: Readonly<Record<string, Modifier>> = {
  ctrl: 'ctrl',
  control: 'ctrl',
  ctl: 'ctrl',
  alt: 'alt',
  option: 'alt',
  opt: 'alt',
  shift: 'shift',
  super: 'super',
  meta: 'super',
  win: 'super',
  cmd: 'super',
  command: 'super',
  mod4: 'super',
  logo: 'super',
};

const KEYS = new Map<string, KeyInfo>();
const ALIASES = new Map<string, string>();

function key(name: string, keysym: number, evdev: number, extra: { modifier?: Modifier; aliases?: string[] } = {}): void {
  KEYS.set(name, Object.freeze({ name, keysym, evdev, ...(extra.modifier ? { modifier: extra.modifier } : {}) }));
  for (const alias of extra.aliases ?? []) ALIASES.set(alias, name);
}

// Letters: keysym = ASCII lower case; evdev codes follow the QWERTY rows.
const LETTER_CODES: Record<string, number> = {
  q: 16,
  w: 17,
  e: 18,
  r: 19,
  t: 20,
  y: 21,
  u: 22,
  i: 23,
  o: 24,
  p: 25,
  a: 30,
  s: 31,
  d: 32,
  f: 33,
  g: 34,
  h: 35,
  j: 36,
  k: 37,
  l: 38,
  z: 44,
  x: 45,
  c: 46,
  v: 47,
  b: 48,
  n: 49,
  m: 50,
};
for (const [letter, code] of Object.entries(LETTER_CODES)) key(letter, letter.charCodeAt(0), code);
for (let d = 1; d <= 9; d += 1) key(String(d), 0x30 + d, 1 + d);
key('0', 0x30, 11);
// F1–F10 are 59–68, F11/F12 87/88, F13–F24 183–194; keysyms are contiguous from 0xffbe.
for (let f = 1; f <= 24; f += 1) key(`f${f}`, 0xffbe + f - 1, f <= 10 ? 58 + f : f <= 12 ? 76 + f : 170 + f);
key('space', 0x20, 57);
key('enter', 0xff0d, 28, { aliases: ['return'] });
key('tab', 0xff09, 15);
key('escape', 0xff1b, 1, { aliases: ['esc'] });
key('backspace', 0xff08, 14);
key('insert', 0xff63, 110, { aliases: ['ins'] });
key('delete', 0xffff, 111, { aliases: ['del'] });
key('home', 0xff50, 102);
key('end', 0xff57, 107);
key('pageup', 0xff55, 104, { aliases: ['pgup', 'prior'] });
key('pagedown', 0xff56, 109, { aliases: ['pgdn', 'next'] });
key('left', 0xff51, 105);
key('up', 0xff52, 103);
key('right', 0xff53, 106);
key('down', 0xff54, 108);
key('pause', 0xff13, 119);
key('scrolllock', 0xff14, 70);
key('print', 0xff61, 99, { aliases: ['printscreen', 'sysrq'] });
key('menu', 0xff67, 127, { aliases: ['compose'] });
key('capslock', 0xffe5, 58);
key('grave', 0x60, 41, { aliases: ['`', 'backtick'] });
key('minus', 0x2d, 12, { aliases: ['-'] });
key('equal', 0x3d, 13, { aliases: ['='] });
key('bracketleft', 0x5b, 26, { aliases: ['['] });
key('bracketright', 0x5d, 27, { aliases: [']'] });
key('backslash', 0x5c, 43, { aliases: ['\\'] });
key('semicolon', 0x3b, 39, { aliases: [';'] });
key('apostrophe', 0x27, 40, { aliases: ["'"] });
key('comma', 0x2c, 51, { aliases: [','] });
key('period', 0x2e, 52, { aliases: ['.', 'dot'] });
key('slash', 0x2f, 53, { aliases: ['/'] });
// Side-specific modifier keys, usable alone (push-to-talk on Right Ctrl is a common choice).
key('leftctrl', 0xffe3, 29, { modifier: 'ctrl', aliases: ['lctrl', 'control_l'] });
key('rightctrl', 0xffe4, 97, { modifier: 'ctrl', aliases: ['rctrl', 'control_r'] });
key('leftshift', 0xffe1, 42, { modifier: 'shift', aliases: ['lshift', 'shift_l'] });
key('rightshift', 0xffe2, 54, { modifier: 'shift', aliases: ['rshift', 'shift_r'] });
key('leftalt', 0xffe9, 56, { modifier: 'alt', aliases: ['lalt', 'alt_l'] });
key('rightalt', 0xffea, 100, { modifier: 'alt', aliases: ['ralt', 'alt_r', 'altgr'] });
key('leftsuper', 0xffeb, 125, { modifier: 'super', aliases: ['lsuper', 'super_l', 'leftmeta'] });
key('rightsuper', 0xffec, 126, { modifier: 'super', aliases: ['rsuper', 'super_r', 'rightmeta'] });

/** Every key name a combo may end with (canonical names). */
export function keyNames(): string[] {
  return [...KEYS.keys()];
}

export function keyNamed(name: string): KeyInfo | undefined {
  const lower = name.toLowerCase();
  return KEYS.get(lower) ?? KEYS.get(ALIASES.get(lower) ?? '');
}

/** The reason a combo text is not valid, or the parsed combo. Never throws. */
export function parseKeyCombo(text: string): { ok: true; combo: KeyCombo } | { ok: false; problem: string } {
  const trimmed = text.trim();
  if (!trimmed) return { ok: false, problem: 'is empty; write a combination such as "ctrl+alt+space" or a single key such as "rightctrl"' };
  // "+" separates parts; a literal plus key is not supported (its keysym depends on the layout).
  const parts = trimmed.split('+').map((p) => p.trim());
  if (parts.some((p) => !p))
    return { ok: false, problem: `"${trimmed}" has an empty part (write keys joined by "+", e.g. "ctrl+alt+space")` };
  const last = parts.at(-1)!;
  const modifiers = new Set<Modifier>();
  for (const part of parts.slice(0, -1)) {
    const modifier = MODIFIER_ALIASES[part.toLowerCase()];
    if (!modifier) {
      return {
        ok: false,
        problem: `"${part}" in "${trimmed}" is not a modifier (ctrl, alt, shift, super); only the last key may be another key`,
      };
    }
    if (modifiers.has(modifier)) return { ok: false, problem: `"${trimmed}" names ${modifier} twice` };
    modifiers.add(modifier);
  }
  const found = keyNamed(last);
  if (!found) {
    if (MODIFIER_ALIASES[last.toLowerCase()]) {
      return {
        ok: false,
        problem: `"${trimmed}" ends with a modifier; end it with a key (e.g. "${trimmed}+space"), or use one side of a modifier alone ("rightctrl", "rightalt")`,
      };
    }
    return {
      ok: false,
      problem: `"${last}" is not a key Koto knows (letters, digits, f1–f24, space, enter, tab, escape, arrows, home/end, pageup/pagedown, insert/delete, pause, scrolllock, print, menu, punctuation names, leftctrl/rightctrl/leftalt/rightalt/leftshift/rightshift/leftsuper/rightsuper)`,
    };
  }
  if (found.modifier && modifiers.has(found.modifier)) {
    return { ok: false, problem: `"${trimmed}" holds ${found.modifier} as a modifier and as the key` };
  }
  const ordered = MODIFIER_ORDER.filter((m) => modifiers.has(m));
  return { ok: true, combo: Object.freeze({ modifiers: ordered, key: found, text: [...ordered, found.name].join('+') }) };
}
