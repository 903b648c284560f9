/**
 * What typing a text on X11 takes, worked out from the server's keyboard map before the first
 * key goes out (no X connection here: planTyping is a pure function).
 *
 * A character whose keysym sits on the current map is typed with its own key (plus Shift for the
 * second column). Every other character goes on a spare keycode — one that carries no keysym —
 * two per keycode (plain and Shift), and all spare keycodes a batch needs are mapped before the
 * batch is typed, so no key is remapped while an application may still be reading an earlier one
 * (xdotool remaps one key per character, which is how it drops and swaps them).
 */

/** Keysyms of the keys that are not characters. */
export const KEYSYM = {
  Return: 0xff0d,
  Tab: 0xff09,
  Shift_L: 0xffe1,
  Num_Lock: 0xff7f,
} as const;

/** What the server's keyboard map says: GetKeyboardMapping rows (the first for `firstKeycode`) and the 8 GetModifierMapping rows. */
export interface KeyboardLayout {
  readonly firstKeycode: number;
  readonly rows: readonly (readonly number[])[];
  readonly modifierMap: readonly (readonly number[])[];
}

export interface Stroke {
  readonly keycode: number;
  /** Hold Shift for it (the character is in the key's second column). */
  readonly shift: boolean;
}

export interface Batch {
  /**
   * Spare keycodes to map first, each with up to two characters: the first typed plain, the
   * second with Shift (NoSymbol when there is none).
   */
  readonly remap: ReadonlyArray<{ readonly keycode: number; readonly keysyms: readonly [number, number] }>;
  readonly strokes: readonly Stroke[];
}

export interface TypingPlan {
  readonly batches: readonly Batch[];
  /** The Shift key pressed for second-column characters. */
  readonly shiftKeycode: number | undefined;
  /** Control characters left out (anything but newline and tab: Escape or Backspace could destroy text). */
  readonly skipped: number;
  readonly strokes: number;
}

/**
 * The keysym that types one code point: Return and Tab for newline and tab, the Latin-1 keysym
 * (equal to the code point) up to U+00FF, the Unicode keysym (0x01000000 + code point) beyond.
 * Undefined for control characters and lone surrogates, which are not typed.
 */
export function keysymFor(codePoint: number): number | undefined {
  if (codePoint === 0x0a) return KEYSYM.Return;
  if (codePoint === 0x09) return KEYSYM.Tab;
  if (codePoint < 0x20 || (codePoint >= 0x7f && codePoint < 0xa0)) return undefined;
  if (codePoint >= 0xd800 && codePoint <= 0xdfff) return undefined;
  if (codePoint <= 0xff) return codePoint;
  return 0x01000000 + codePoint;
}

/** The keysyms of the text, one per character typed; CR LF and a lone CR are one Return each. */
export function keysymsOf(text: string): { keysyms: number[]; skipped: number } {
  const keysyms: number[] = [];
  let skipped = 0;
  const points = [...text];
  for (let i = 0; i < points.length; i += 1) {
    let codePoint = points[i]!.codePointAt(0)!;
    if (codePoint === 0x0d) {
      if (points[i + 1] === '\n') i += 1;
      codePoint = 0x0a;
    }
    const keysym = keysymFor(codePoint);
    if (keysym === undefined) skipped += 1;
    else keysyms.push(keysym);
  }
  return { keysyms, skipped };
}

/**
 * Keycodes without any keysym and outside the modifier map: free to carry a character for a
 * moment. Longest runs of consecutive keycodes first: each run is one ChangeKeyboardMapping,
 * and each of those makes every X client (the window manager too) reload its keyboard map.
 */
export function spareKeycodes(layout: KeyboardLayout): number[] {
  const modifiers = new Set(layout.modifierMap.flat().filter((k) => k !== 0));
  const runs: number[][] = [];
  layout.rows.forEach((row, index) => {
    const keycode = layout.firstKeycode + index;
    if (!row.every((sym) => sym === 0) || modifiers.has(keycode)) return;
    const last = runs.at(-1);
    if (last && last.at(-1) === keycode - 1) last.push(keycode);
    else runs.push([keycode]);
  });
  return runs.sort((a, b) => b.length - a.length || a[0]! - b[0]!).flat();
}

/** Where each keysym of the map can be typed: its first key with it unshifted, else shifted. */
function strokesOnMap(layout: KeyboardLayout): Map<number, Stroke> {
  const modifiers = new Set(layout.modifierMap.flat().filter((k) => k !== 0));
  const found = new Map<number, Stroke>();
  for (const column of [0, 1]) {
    layout.rows.forEach((row, index) => {
      const keycode = layout.firstKeycode + index;
      const sym = row[column] ?? 0;
      if (sym === 0 || modifiers.has(keycode) || found.has(sym)) return;
      found.set(sym, { keycode, shift: column === 1 });
    });
  }
  return found;
}

export function planTyping(text: string, layout: KeyboardLayout): TypingPlan | { problem: string } {
  const { keysyms, skipped } = keysymsOf(text);
  const onMap = strokesOnMap(layout);
  const spare = spareKeycodes(layout);
  const shiftKeycode = (layout.modifierMap[0] ?? []).find((k) => k !== 0);

  // Two characters per spare keycode when there is a Shift key: half the keycodes to remap.
  const perKey = shiftKeycode === undefined ? 1 : 2;
  const capacity = spare.length * perKey;

  const batches: Batch[] = [];
  let slots = new Map<number, number>(); // keysym → slot (keycode spare[slot / perKey], Shift when odd), this batch
  let strokes: Stroke[] = [];
  const strokeFor = (slot: number): Stroke => ({ keycode: spare[Math.floor(slot / perKey)]!, shift: slot % perKey === 1 });
  const close = () => {
    if (strokes.length === 0) return;
    const rows = new Map<number, [number, number]>();
    for (const [keysym, slot] of slots) {
      const { keycode, shift } = strokeFor(slot);
      const row = rows.get(keycode) ?? [0, 0];
      row[shift ? 1 : 0] = keysym;
      rows.set(keycode, row);
    }
    batches.push({ remap: [...rows].map(([keycode, keysyms]) => ({ keycode, keysyms })), strokes });
    slots = new Map();
    strokes = [];
  };

  for (const keysym of keysyms) {
    const stroke = onMap.get(keysym);
    if (stroke && (!stroke.shift || shiftKeycode !== undefined)) {
      strokes.push(stroke);
      continue;
    }
    let slot = slots.get(keysym);
    if (slot === undefined) {
      if (capacity === 0) return { problem: 'the keyboard map has no free keycode to type characters that are not on it' };
      if (slots.size === capacity) close();
      slot = slots.size;
      slots.set(keysym, slot);
    }
    strokes.push(strokeFor(slot));
  }
  close();
  return { batches, shiftKeycode, skipped, strokes: keysyms.length };
}

/** Runs of consecutive keycodes (one ChangeKeyboardMapping request each), two keysyms per keycode, in keycode order. */
export function contiguousRuns(
  rows: ReadonlyArray<{ readonly keycode: number; readonly keysyms: readonly [number, number] }>,
): Array<{ first: number; keysyms: number[] }> {
  const sorted = [...rows].sort((a, b) => a.keycode - b.keycode);
  const runs: Array<{ first: number; keysyms: number[] }> = [];
  for (const { keycode, keysyms } of sorted) {
    const last = runs.at(-1);
    if (last && last.first + last.keysyms.length / 2 === keycode) last.keysyms.push(...keysyms);
    else runs.push({ first: keycode, keysyms: [...keysyms] });
  }
  return runs;
}
