/** How the X11 typer plans the keys of a text from a keyboard map (pure; the real typing is in type-apps.test.ts). */
import { describe, expect, it } from 'vitest';
import {
  contiguousRuns,
  keysymFor,
  keysymsOf,
  planTyping,
  spareKeycodes,
  type KeyboardLayout,
} from '../../plugins/outputs/x11-typer-plan.ts';

const a = 0x61;
const A = 0x41;
/** keycodes 8–15: a/A, b/B, space, Return, (empty), Shift_L, (empty), (empty). */
const LAYOUT: KeyboardLayout = {
  firstKeycode: 8,
  rows: [
    [a, A],
    [0x62, 0x42],
    [0x20, 0],
    [0xff0d, 0],
    [0, 0],
    [0xffe1, 0],
    [0, 0],
    [0, 0],
  ],
  modifierMap: [[13, 0], [], [], [], [], [], [], []],
};

describe('keysyms', () => {
  it('Latin-1 as itself, beyond as Unicode keysyms; newline and tab as keys; control characters left out', () => {
    expect(keysymFor('é'.codePointAt(0)!)).toBe(0xe9);
    expect(keysymFor('—'.codePointAt(0)!)).toBe(0x1002014);
    expect(keysymFor('😀'.codePointAt(0)!)).toBe(0x101f600);
    expect(keysymFor(0x0a)).toBe(0xff0d);
    expect(keysymFor(0x09)).toBe(0xff09);
    for (const control of [0x00, 0x08, 0x1b, 0x7f, 0x85, 0xd800]) expect(keysymFor(control)).toBeUndefined();
    expect(keysymsOf('a\r\nb\rc\x1bd')).toEqual({ keysyms: [a, 0xff0d, 0x62, 0xff0d, 0x63, 0x64], skipped: 1 });
  });
});

describe('planTyping', () => {
  it('types what is on the map with its key (Shift for the second column)', () => {
    const plan = planTyping('aB a\n', LAYOUT);
    expect(plan).toMatchObject({ shiftKeycode: 13, skipped: 0, strokes: 5 });
    if ('problem' in plan) throw new Error(plan.problem);
    expect(plan.batches).toEqual([
      {
        remap: [],
        strokes: [
          { keycode: 8, shift: false },
          { keycode: 9, shift: true },
          { keycode: 10, shift: false },
          { keycode: 8, shift: false },
          { keycode: 11, shift: false },
        ],
      },
    ]);
  });

  it('puts characters off the map on spare keycodes (not the modifier ones), two per keycode (plain, Shift), in batches', () => {
    expect(spareKeycodes(LAYOUT)).toEqual([14, 15, 12]); // the run 14–15 first: fewer mapping requests
    const plan = planTyping('éaüé✓😀🎉ß€é', LAYOUT);
    if ('problem' in plan) throw new Error(plan.problem);
    const plain = (keycode: number) => ({ keycode, shift: false });
    const shifted = (keycode: number) => ({ keycode, shift: true });
    expect(plan.batches).toEqual([
      {
        remap: [
          { keycode: 14, keysyms: [0xe9, 0xfc] },
          { keycode: 15, keysyms: [0x1002713, 0x101f600] },
          { keycode: 12, keysyms: [0x101f389, 0xdf] },
        ],
        strokes: [plain(14), plain(8), shifted(14), plain(14), plain(15), shifted(15), plain(12), shifted(12)],
      },
      {
        remap: [{ keycode: 14, keysyms: [0x10020ac, 0xe9] }],
        strokes: [plain(14), shifted(14)],
      },
    ]);
  });

  it('without a Shift key: one character per spare keycode', () => {
    const plan = planTyping('éü', { ...LAYOUT, modifierMap: [[], [], [], [], [], [], [], []] });
    if ('problem' in plan) throw new Error(plan.problem);
    expect(plan.batches[0]!.remap).toEqual([
      { keycode: 14, keysyms: [0xe9, 0] },
      { keycode: 15, keysyms: [0xfc, 0] },
    ]);
  });

  it('no spare keycode: a problem (xdotool is tried instead), unless every character is on the map', () => {
    const full: KeyboardLayout = { ...LAYOUT, rows: LAYOUT.rows.map((row) => (row.every((s) => s === 0) ? [0x7a, 0x5a] : row)) };
    expect(planTyping('é', full)).toEqual({ problem: 'the keyboard map has no free keycode to type characters that are not on it' });
    expect('problem' in planTyping('ab', full)).toBe(false);
  });

  it('groups keycodes into runs, one ChangeKeyboardMapping each', () => {
    expect(
      contiguousRuns([
        { keycode: 15, keysyms: [3, 0] },
        { keycode: 12, keysyms: [1, 0] },
        { keycode: 14, keysyms: [2, 4] },
      ]),
    ).toEqual([
      { first: 12, keysyms: [1, 0] },
      { first: 14, keysyms: [2, 4, 3, 0] },
    ]);
  });
});
