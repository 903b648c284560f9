/**
 * The X11 hotkey backend against a real X server (Xvfb). Keys are pressed with xdotool, which
 * goes through XTEST — through the server's own input path, so passive grabs, lock modifiers and
 * server auto-repeat apply exactly as for a physical keyboard. A second plain X client
 * (x11-client.ts) plays "another program": it holds grabs, reads the lock state and edits the map.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tempHome } from '../support/index.ts';
import { KotoError, parseKeyCombo, type KeyCombo } from '../../src/index.ts';
import type { BackendOptions, HotkeyGrab, KeyEvent, OpenBackend } from '../../plugins/hotkey/backend.ts';
import { HOTKEY_ERRORS } from '../../plugins/hotkey/error-codes.ts';
import { openX11, openX11With, planGrab, type GrabPlan } from '../../plugins/hotkey/x11.ts';
import { registerPluginErrors } from '../../src/kernel/errors.ts';
import { startXvfb, x, type Xvfb } from '../outputs/x11.ts';
import { openOtherClient, type OtherClient } from './x11-client.ts';

let xvfb: Xvfb;
let other: OtherClient;
const savedDisplay = process.env.DISPLAY;
const grabs: HotkeyGrab[] = [];
const fallback = openX11With({ detectableAutoRepeat: false });

// The kernel registers the plugin's codes when it loads the plugin; these tests drive the backend without one.
beforeAll(() => registerPluginErrors('hotkey', HOTKEY_ERRORS));

beforeAll(async () => {
  xvfb = await startXvfb();
  // xdotool and setxkbmap (through x()) act on the test's display.
  process.env.DISPLAY = xvfb.display;
  other = await openOtherClient(xvfb.display);
});

afterEach(async () => {
  await Promise.all(grabs.splice(0).map((grab) => grab.close()));
});

afterAll(async () => {
  await other?.close();
  await xvfb?.stop();
  if (savedDisplay === undefined) delete process.env.DISPLAY;
  else process.env.DISPLAY = savedDisplay;
});

function combo(text: string): KeyCombo {
  const parsed = parseKeyCombo(text);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.combo;
}

interface Watch {
  readonly events: KeyEvent[];
  readonly logs: string[];
  readonly errors: Error[];
  readonly onKey: (event: KeyEvent) => void;
  readonly options: BackendOptions;
  types(): string[];
}

function watch(env: NodeJS.ProcessEnv = { DISPLAY: xvfb.display }): Watch {
  const events: KeyEvent[] = [];
  const logs: string[] = [];
  const errors: Error[] = [];
  const log = (level: string) => (message: string) => void logs.push(`${level} ${message}`);
  return {
    events,
    logs,
    errors,
    onKey: (event) => void events.push(event),
    options: { env, log: { debug: log('debug'), info: log('info'), warn: log('warn') }, onError: (err) => void errors.push(err) },
    types: () => events.map((event) => event.type),
  };
}

async function grabbed(text: string, open: OpenBackend = openX11): Promise<Watch & { grab: HotkeyGrab }> {
  const w = watch();
  const grab = await open(combo(text), w.onKey, w.options);
  grabs.push(grab);
  return { ...w, grab };
}

/** Polls until `check` holds; the deadline is a hang guard, not a speed limit. */
async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function rejection(promise: Promise<unknown>): Promise<KotoError> {
  try {
    await promise;
  } catch (err) {
    if (KotoError.is(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection, the grab succeeded');
}

/** Presses and releases `keys` with xdotool and waits for both events. */
async function tap(w: Watch, keys: string): Promise<void> {
  const before = w.events.length;
  await x('xdotool', ['keydown', keys]);
  try {
    await waitFor(() => w.events.length > before, `the press of ${keys}`);
  } finally {
    // A key left down would stay down on the server for every later test.
    await x('xdotool', ['keyup', keys]);
  }
  await waitFor(() => w.events.length > before + 1, `the release of ${keys}`);
}

/** What the backend grabs for `text` on the test server's current map. */
async function planFor(text: string): Promise<GrabPlan> {
  const keyboard = await other.keyboard();
  const plan = planGrab(combo(text), keyboard.first, keyboard.keysyms, keyboard.modifiers);
  if ('problem' in plan) throw new Error(plan.problem);
  return plan;
}

/** Turns the lock keys on (as a user would, by pressing them), runs `body`, turns them off again. */
async function withLocks(keys: readonly string[], body: () => Promise<void>): Promise<void> {
  expect(await other.lockedMods()).toBe(0);
  let turnedOn: string[] = [];
  try {
    for (const key of keys) {
      const before = await other.lockedMods();
      await x('xdotool', ['key', key]);
      turnedOn = [...turnedOn, key];
      await waitFor(async () => (await other.lockedMods()) !== before, `${key} to lock`);
    }
    await body();
  } finally {
    for (const key of turnedOn) await x('xdotool', ['key', key]);
    await waitFor(async () => (await other.lockedMods()) === 0, 'the locks to be off again');
  }
}

describe('X11 hotkey: grabbing and events', () => {
  it('reports a press and a release of the grabbed combination', async () => {
    const w = await grabbed('ctrl+alt+space');
    expect({ backend: w.grab.backend, keys: w.grab.keys, where: w.grab.where }).toEqual({
      backend: 'x11',
      keys: 'ctrl+alt+space',
      where: xvfb.display,
    });

    await x('xdotool', ['keydown', 'ctrl+alt+space']);
    await waitFor(() => w.events.length >= 1, 'the press');
    expect(w.types()).toEqual(['down']);
    await x('xdotool', ['keyup', 'ctrl+alt+space']);
    await waitFor(() => w.events.length >= 2, 'the release');
    expect(w.types()).toEqual(['down', 'up']);
    expect(w.events[1]!.at).toBeGreaterThanOrEqual(w.events[0]!.at);
  });

  it('does not fire for other combinations (missing, extra or other modifiers, other keys)', async () => {
    const w = await grabbed('ctrl+alt+space');
    for (const keys of ['space', 'ctrl+space', 'alt+space', 'ctrl+shift+alt+space', 'super+ctrl+alt+space', 'ctrl+alt+b']) {
      await x('xdotool', ['key', keys]);
    }
    // The server handles clients' requests in order and delivers a connection's events in order:
    // had any of those fired, its events would come before these.
    await tap(w, 'ctrl+alt+space');
    expect(w.types()).toEqual(['down', 'up']);
  });

  it.each([
    ['Num Lock', ['Num_Lock']],
    ['Caps Lock', ['Caps_Lock']],
    ['Num Lock and Caps Lock', ['Num_Lock', 'Caps_Lock']],
  ])('works with %s on', async (_name, locks) => {
    const w = await grabbed('ctrl+alt+space');
    await withLocks(locks, async () => {
      await tap(w, 'ctrl+alt+space');
      await tap(w, 'ctrl+alt+space');
    });
    expect(w.types()).toEqual(['down', 'up', 'down', 'up']);
  });

  it.each([
    ['f9', 'F9'],
    ['rightctrl', 'Control_R'],
    ['ctrl+rightshift', 'ctrl+Shift_R'],
  ])('a combination of one key or a side-specific modifier works: %s', async (text, keys) => {
    const w = await grabbed(text);
    await tap(w, keys);
    await withLocks(['Num_Lock', 'Caps_Lock'], () => tap(w, keys));
    expect(w.types()).toEqual(['down', 'up', 'down', 'up']);
  });

  it('a side-specific modifier key fires when pressed alone or with its other side held, not for the other side', async () => {
    const w = await grabbed('rightctrl');
    const rightCtrl = (await planFor('rightctrl')).keycodes[0]!;
    // xdotool presses Control_L along with Control_R; a keyboard sends Control_R alone.
    await other.fakeKey(rightCtrl, true);
    await waitFor(() => w.events.length >= 1, 'the press of Right Ctrl alone');
    await other.fakeKey(rightCtrl, false);
    await waitFor(() => w.events.length >= 2, 'the release of Right Ctrl alone');
    await x('xdotool', ['key', 'Control_L']);
    await x('xdotool', ['key', 'ctrl+b']);
    await tap(w, 'Control_R');
    expect(w.types()).toEqual(['down', 'up', 'down', 'up']);
  });

  it('rightalt is the AltGr key on layouts that have one', async () => {
    try {
      await x('setxkbmap', ['de']);
      const w = await grabbed('rightalt');
      expect(w.logs.join('\n')).toContain(`keycodes ${(await planFor('rightalt')).keycodes.join(', ')}`);
      await tap(w, 'ISO_Level3_Shift');
      expect(w.types()).toEqual(['down', 'up']);
    } finally {
      await x('setxkbmap', ['us']);
    }
  });

  it.each([
    ['by the server (XKB detectable auto-repeat)', openX11, 'repeated press', 'detected by the server'],
    ['from release/press pairs (no XKB)', fallback, 'release/press pair', 'filtered from release/press pairs'],
  ])('a held combination is one press and one release: auto-repeat filtered %s', async (_name, open, kind, setup) => {
    // Server auto-repeat on (Xvfb's default; set anyway, as `xset r on` would).
    expect(await other.autoRepeatOn()).toBe(1);
    const w = await grabbed('ctrl+alt+space', open);
    expect(w.logs.join('\n')).toContain(setup);

    await x('xdotool', ['keydown', 'ctrl+alt+space']);
    try {
      // The backend notes the first repeat it filters: proof that the server did repeat.
      await waitFor(
        () => w.logs.some((line) => line.includes(`auto-repeat of ctrl+alt+space ignored (${kind})`)),
        'the server to repeat the held key',
      );
      expect(w.types()).toEqual(['down']);
    } finally {
      await x('xdotool', ['keyup', 'ctrl+alt+space']);
    }
    await waitFor(() => w.events.length >= 2, 'the release');
    expect(w.types()).toEqual(['down', 'up']);

    // Nothing is stuck: the next press is a new press.
    await tap(w, 'ctrl+alt+space');
    expect(w.types()).toEqual(['down', 'up', 'down', 'up']);
  });

  it.each([
    ['with XKB', openX11],
    ['without XKB', fallback],
  ])('follows a new keyboard layout (setxkbmap) %s', async (_name, open) => {
    // On a German layout z and y swap places: the grab must move to the key that now says z.
    const before = await planFor('ctrl+alt+z');
    const w = await grabbed('ctrl+alt+z', open);
    try {
      await x('setxkbmap', ['de']);
      const after = await planFor('ctrl+alt+z');
      expect(after.keycodes).not.toEqual(before.keycodes);
      await waitFor(
        () => w.logs.some((line) => line.includes(`grabbed again (keycodes ${after.keycodes.join(', ')},`)),
        'the grab to follow the new map',
      );
      await tap(w, 'ctrl+alt+z');
      expect(w.types()).toEqual(['down', 'up']);
    } finally {
      await x('setxkbmap', ['us']);
    }
    await waitFor(
      () => w.logs.some((line) => line.includes(`grabbed again (keycodes ${before.keycodes.join(', ')},`)),
      'the grab to follow the map back',
    );
    await tap(w, 'ctrl+alt+z');
    expect(w.types()).toEqual(['down', 'up', 'down', 'up']);
    expect(w.errors).toEqual([]);
  });

  it('follows a key remapped with the core protocol (as xmodmap does)', async () => {
    const keyboard = await other.keyboard();
    const f9 = (await planFor('f9')).keycodes[0]!;
    const f10 = (await planFor('f10')).keycodes[0]!;
    expect(f10).toBe(f9 + 1);
    const rows = [keyboard.keysyms[f9 - keyboard.first]!, keyboard.keysyms[f10 - keyboard.first]!];
    const w = await grabbed('f9');
    try {
      await other.setKeysyms(f9, [rows[1]!, rows[0]!]);
      await waitFor(() => w.logs.some((line) => line.includes(`grabbed again (keycodes ${f10},`)), 'the grab to follow the swap');
      await tap(w, 'F9');
      expect(w.types()).toEqual(['down', 'up']);
      await x('xdotool', ['key', 'F10']);
    } finally {
      await other.setKeysyms(f9, rows);
    }
    await waitFor(() => w.logs.some((line) => line.includes(`grabbed again (keycodes ${f9},`)), 'the grab to follow the swap back');
    await tap(w, 'F9');
    expect(w.types()).toEqual(['down', 'up', 'down', 'up']);
  });
});

describe('X11 hotkey: taken, released, unavailable', () => {
  it('a combination another client holds is HOTKEY_ERR_TAKEN', async () => {
    const plan = await planFor('ctrl+alt+space');
    const holder = await openOtherClient(xvfb.display);
    try {
      expect(await holder.grab(plan.keycodes[0]!, plan.modifiers)).toBeNull();
      const w = watch();
      const err = await rejection(openX11(combo('ctrl+alt+space'), w.onKey, w.options));
      expect(err.code).toBe('HOTKEY_ERR_TAKEN');
      expect(err.message).toBe(`the hotkey "ctrl+alt+space" is already grabbed by another program on display ${xvfb.display}`);
      expect(err.fix).toContain('hotkey.keys');
    } finally {
      await holder.close();
    }
  });

  it('when only one lock variant is taken, the grabs already made are released again', async () => {
    const plan = await planFor('ctrl+alt+space');
    const lastVariant = plan.variants.at(-1)!;
    expect(lastVariant).not.toBe(0);
    const holder = await openOtherClient(xvfb.display);
    const third = await openOtherClient(xvfb.display);
    try {
      expect(await holder.grab(plan.keycodes[0]!, plan.modifiers | lastVariant)).toBeNull();
      const w = watch();
      const err = await rejection(openX11(combo('ctrl+alt+space'), w.onKey, w.options));
      expect(err.code).toBe('HOTKEY_ERR_TAKEN');
      // Every other variant was grabbed before the refusal: all of them are free again.
      for (const lock of plan.variants.slice(0, -1)) {
        expect(await third.grab(plan.keycodes[0]!, plan.modifiers | lock)).toBeNull();
      }
    } finally {
      await holder.close();
      await third.close();
    }
  });

  it('close() releases the grab (another client can take it) and is idempotent', async () => {
    const plan = await planFor('ctrl+alt+space');
    const w = await grabbed('ctrl+alt+space');
    await tap(w, 'ctrl+alt+space');
    await w.grab.close();
    await w.grab.close();

    const holder = await openOtherClient(xvfb.display);
    try {
      for (const lock of plan.variants) expect(await holder.grab(plan.keycodes[0]!, plan.modifiers | lock)).toBeNull();
      await x('xdotool', ['key', 'ctrl+alt+space']);
      await waitFor(() => holder.pressed.includes(plan.keycodes[0]!), 'the new holder to get the combination');
      expect(w.types()).toEqual(['down', 'up']);
    } finally {
      await holder.close();
    }
    // A grab opened after the holder left works: nothing of the first is left in the way.
    const again = await grabbed('ctrl+alt+space');
    await tap(again, 'ctrl+alt+space');
    expect(again.types()).toEqual(['down', 'up']);
  });

  it('no DISPLAY is HOTKEY_ERR_UNAVAILABLE with the remedy', async () => {
    const w = watch({});
    const err = await rejection(openX11(combo('ctrl+alt+space'), w.onKey, w.options));
    expect(err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    expect(err.message).toBe('the x11 hotkey cannot run: DISPLAY is not set (no X session in this environment)');
    expect(err.fix).toContain('DISPLAY');
    expect(err.fix).toContain('hotkey.backend: evdev');

    const wayland = watch({ WAYLAND_DISPLAY: 'wayland-0', DISPLAY: '  ' });
    const onWayland = await rejection(openX11(combo('ctrl+alt+space'), wayland.onKey, wayland.options));
    expect(onWayland.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    expect(onWayland.message).toContain('Wayland session');
    expect(onWayland.fix).toContain('hotkey.backend: evdev');
  });

  it('a display nobody serves, or a DISPLAY that is not a display name, is HOTKEY_ERR_UNAVAILABLE', async () => {
    // The display number of this Xvfb plus 4000: far above any the machine runs, so its socket and port are free.
    const unused = `:${Number(xvfb.display.slice(1)) + 4000}`;
    for (const [display, detail] of [
      [unused, `cannot connect to display ${unused} (`],
      ['not-a-display', 'cannot connect to display not-a-display (Cannot parse display'],
    ] as const) {
      const w = watch({ DISPLAY: display });
      const err = await rejection(openX11(combo('ctrl+alt+space'), w.onKey, w.options));
      expect(err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
      expect(err.message).toContain(detail);
      expect(err.fix).toContain('hotkey.backend: evdev');
    }
  });

  it('an unreadable X cookie file is HOTKEY_ERR_UNAVAILABLE, not a crash', async () => {
    // The x11 package would throw from inside its file callback; the backend checks first.
    const home = tempHome('koto-xauth-');
    const saved = process.env.XAUTHORITY;
    process.env.XAUTHORITY = home.dir; // a directory
    try {
      const w = watch();
      const err = await rejection(openX11(combo('f9'), w.onKey, w.options));
      expect(err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
      expect(err.message).toBe(`the x11 hotkey cannot run: the X cookie file ${home.dir} is not a regular file`);
      expect(err.fix).toContain('XAUTHORITY');
    } finally {
      if (saved === undefined) delete process.env.XAUTHORITY;
      else process.env.XAUTHORITY = saved;
      home.cleanup();
    }
  });

  it('a remap that moves the key onto a combination another client holds is reported once through onError', async () => {
    const keyboard = await other.keyboard();
    const f9 = (await planFor('f9')).keycodes[0]!;
    const f10 = f9 + 1;
    const rows = [keyboard.keysyms[f9 - keyboard.first]!, keyboard.keysyms[f10 - keyboard.first]!];
    const w = await grabbed('f9');
    const holder = await openOtherClient(xvfb.display);
    try {
      expect(await holder.grab(f10, 0)).toBeNull();
      await other.setKeysyms(f9, [rows[1]!, rows[0]!]);
      await waitFor(() => w.errors.length > 0, 'onError');
      expect((w.errors[0] as KotoError).code).toBe('HOTKEY_ERR_TAKEN');
      expect(w.errors[0]!.message).toContain('"f9"');
    } finally {
      await other.setKeysyms(f9, rows);
      await holder.close();
    }
    // Failed means released: F9 (back on its own key) is free for another client.
    const next = await openOtherClient(xvfb.display);
    try {
      expect(await next.grab(f9, 0)).toBeNull();
    } finally {
      await next.close();
    }
    expect(w.errors).toHaveLength(1);
  });

  it('a key the keyboard map does not have is HOTKEY_ERR_UNAVAILABLE', async () => {
    const keyboard = await other.keyboard();
    expect(keyboard.keysyms.some((row) => row.includes(combo('f24').key.keysym))).toBe(false);
    const w = watch();
    const err = await rejection(openX11(combo('super+f24'), w.onKey, w.options));
    expect(err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    expect(err.message).toBe(
      `the x11 hotkey cannot run: no key on the keyboard map produces "f24" (keysym 0xffd5) on display ${xvfb.display}`,
    );
    expect(err.fix).toContain('hotkey.keys');
  });

  it('a lost connection is reported once through onError; close() still resolves', async () => {
    const second = await startXvfb();
    const w = watch({ DISPLAY: second.display });
    let grab: HotkeyGrab | undefined;
    try {
      grab = await openX11(combo('f9'), w.onKey, w.options);
    } finally {
      await second.stop();
    }
    await waitFor(() => w.errors.length > 0, 'onError');
    await grab.close();
    await grab.close();
    expect(w.errors).toHaveLength(1);
    const err = w.errors[0] as KotoError;
    expect(err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    expect(err.message).toContain(`lost the connection to display ${second.display}`);
    expect(w.events).toEqual([]);
  });
});

describe('planGrab: reading the keyboard and modifier maps', () => {
  // A small map: keycode 10 space, 11 Alt_L, 12 Num_Lock, 13 Super_L, 14 Meta_L, 15 Control_R.
  const first = 10;
  const keysyms = [
    [0x20, 0],
    [0xffe9, 0],
    [0xff7f, 0],
    [0xffeb, 0],
    [0, 0xffe7],
    [0xffe4, 0],
  ];
  // Shift, Lock, Control, Mod1..Mod5 — here Alt on Mod3, Num Lock on Mod5, Super on Mod2.
  const modifierMap = [[], [], [15], [], [13], [11], [], [12]];

  it('finds Alt, Super and Num Lock wherever the map puts them, and the lock variants', () => {
    expect(planGrab(combo('ctrl+alt+super+space'), first, keysyms, modifierMap)).toEqual({
      keycodes: [10],
      modifiers: 4 | 32 | 16,
      variants: [0, 2, 128, 130],
    });
  });

  it('falls back to Meta for Alt; reports a modifier or key the map lacks', () => {
    const metaOnly = [[], [], [], [14], [], [], [], []];
    expect(planGrab(combo('alt+space'), first, keysyms, metaOnly)).toMatchObject({ modifiers: 8, variants: [0, 2] });
    expect(planGrab(combo('alt+space'), first, keysyms, [[], [], [], [], [], [], [], []])).toEqual({
      problem: 'no modifier of the keyboard map holds Alt (Alt_L, Alt_R, Meta_L, Meta_R)',
    });
    expect(planGrab(combo('f1'), first, keysyms, modifierMap)).toEqual({
      problem: 'no key on the keyboard map produces "f1" (keysym 0xffbe)',
    });
  });

  it('prefers keycodes that carry the keysym unshifted, else takes a shifted one', () => {
    // Keycode 10 has "1" shifted, 11 unshifted: 11 is the key a user means.
    expect(
      planGrab(
        combo('1'),
        first,
        [
          [0x21, 0x31],
          [0x31, 0],
        ],
        modifierMap,
      ),
    ).toMatchObject({ keycodes: [11] });
    expect(
      planGrab(
        combo('1'),
        first,
        [
          [0x21, 0x31],
          [0x41, 0],
        ],
        modifierMap,
      ),
    ).toMatchObject({ keycodes: [10] });
  });

  it('a modifier key used alone is grabbed with and without its own modifier (and the locks)', () => {
    expect(planGrab(combo('rightctrl'), first, keysyms, modifierMap)).toEqual({
      keycodes: [15],
      modifiers: 0,
      variants: [0, 2, 128, 130, 4, 6, 132, 134],
    });
  });
});
