/**
 * The X11 hotkey: a passive key grab on the root window — what desktop shortcut daemons do — so
 * the combination reaches Koto whichever window has the focus, and no other client sees it.
 *
 * Speaks the X protocol itself through the pure-JS `x11` package (no libX11, no helper process),
 * loaded only when a hotkey is opened. The grab is made once per keycode that carries the key's
 * keysym and once per combination of the lock modifiers (Caps Lock, Num Lock, Scroll Lock) on
 * top of the combo's own modifiers: X matches grab modifiers exactly, so without those variants
 * the hotkey would silently stop working whenever Num Lock is on. When the keyboard map changes
 * (setxkbmap, xmodmap, a new keyboard) the grab moves to the keys that now carry the combo.
 */
import { dependencyMissing, describeError, KotoError, kotoError, type KeyCombo, type Modifier } from 'koto-voice';
import {
  connectX11,
  isXError,
  X11ConnectError,
  x11Request as request,
  type XClient,
  type XDisplay,
  type XError,
  type XEvent,
  type XkbExtension,
} from 'koto-voice/x11';
import { now, type BackendOptions, type HotkeyGrab, type KeyEvent, type OpenBackend } from './backend.ts';

// Core modifier masks, in the order of GetModifierMapping's rows: Shift, Lock, Control, Mod1–Mod5.
const SHIFT_MASK = 1;
const LOCK_MASK = 2;
const CONTROL_MASK = 4;
const FIRST_MOD_ROW = 3;
const MODIFIER_ROWS = 8;

const KEY_PRESS = 2;
const KEY_RELEASE = 3;
const MAPPING_NOTIFY = 34;
const MAPPING_MODIFIER = 0;
const MAPPING_KEYBOARD = 1;
const GRAB_MODE_ASYNC = 1;
const BAD_ACCESS = 10;

const XKB_USE_CORE_KBD = 0x100;
const XKB_PER_CLIENT_FLAGS = 21;
const XKB_PCF_DETECTABLE_AUTO_REPEAT = 1;
const XKB_NEW_KEYBOARD_NOTIFY = 0;
const XKB_MAP_NOTIFY = 1;
const XKB_KEY_SYMS_MASK = 1 << 1;
const XKB_MODIFIER_MAP_MASK = 1 << 2;

const KEYSYM = {
  Alt_L: 0xffe9,
  Alt_R: 0xffea,
  Meta_L: 0xffe7,
  Meta_R: 0xffe8,
  Super_L: 0xffeb,
  Super_R: 0xffec,
  Num_Lock: 0xff7f,
  Scroll_Lock: 0xff14,
} as const;

/** Each modifier's keysyms, best first: Alt is looked for before Meta (both usually sit on Mod1). */
const MODIFIER_KEYSYMS: Readonly<Record<'alt' | 'super', readonly (readonly number[])[]>> = {
  alt: [
    [KEYSYM.Alt_L, KEYSYM.Alt_R],
    [KEYSYM.Meta_L, KEYSYM.Meta_R],
  ],
  super: [[KEYSYM.Super_L, KEYSYM.Super_R]],
};

/** Guards a display that accepts the connection and then never answers; not a speed limit. */
const OPEN_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 2_000;

const CONNECT_REMEDY =
  'run Koto inside your X session, or set DISPLAY to it (e.g. DISPLAY=:0, as `echo $DISPLAY` shows there) with XAUTHORITY if it needs one; on Wayland or a text console use `hotkey.backend: evdev`';

/** What one grab holds: the keycodes, the combo's modifier mask and the variants added to it. */
export interface GrabPlan {
  readonly keycodes: readonly number[];
  readonly modifiers: number;
  /**
   * Every combination of the modifiers that must not matter (0 first), each grabbed on top of
   * `modifiers`: the locks (Caps, Num, Scroll) and, for a modifier key used as the key, its own
   * modifier — held already when the other side's key is down, or when a tool presses it along.
   */
  readonly variants: readonly number[];
}

/**
 * Keysyms the same physical key carries on other layouts: Right Alt is AltGr
 * (ISO_Level3_Shift) on most non-US layouts.
 */
const ALTERNATE_KEYSYMS: Readonly<Record<string, readonly number[]>> = {
  rightalt: [0xfe03],
};

/**
 * Works out what to grab for `combo` from the server's keyboard map (GetKeyboardMapping rows, the
 * first for `firstKeycode`) and modifier map (GetModifierMapping: 8 rows of keycodes). Keycodes
 * that carry the keysym unshifted (column 0) are preferred; a key that exists only as a shifted
 * symbol is grabbed on the key that carries it.
 */
export function planGrab(
  combo: KeyCombo,
  firstKeycode: number,
  keysyms: readonly (readonly number[])[],
  modifierMap: readonly (readonly number[])[],
): GrabPlan | { problem: string } {
  let keycodes: number[] = [];
  for (const wanted of [combo.key.keysym, ...(ALTERNATE_KEYSYMS[combo.key.name] ?? [])]) {
    const unshifted: number[] = [];
    const anywhere: number[] = [];
    keysyms.forEach((row, index) => {
      if (row[0] === wanted) unshifted.push(firstKeycode + index);
      else if (row.includes(wanted)) anywhere.push(firstKeycode + index);
    });
    keycodes = unshifted.length > 0 ? unshifted : anywhere;
    if (keycodes.length > 0) break;
  }
  if (keycodes.length === 0) {
    return { problem: `no key on the keyboard map produces "${combo.key.name}" (keysym 0x${combo.key.keysym.toString(16)})` };
  }

  const symsOf = (keycode: number): readonly number[] => keysyms[keycode - firstKeycode] ?? [];
  /** The Mod1–Mod5 mask whose keys produce one of `syms`, or 0. */
  const modBitFor = (syms: readonly number[]): number => {
    for (let row = FIRST_MOD_ROW; row < MODIFIER_ROWS; row += 1) {
      const keys = (modifierMap[row] ?? []).filter((k) => k !== 0);
      if (keys.some((k) => symsOf(k).some((s) => syms.includes(s)))) return 1 << row;
    }
    return 0;
  };

  let modifiers = 0;
  for (const modifier of combo.modifiers) {
    const mask = maskOf(modifier, modBitFor);
    if (!mask)
      return {
        problem: `no modifier of the keyboard map holds ${modifier === 'alt' ? 'Alt (Alt_L, Alt_R, Meta_L, Meta_R)' : 'Super (Super_L, Super_R)'}`,
      };
    modifiers |= mask;
  }

  const ownBits = modifierMap.flatMap((row, index) => (row.some((k) => k !== 0 && keycodes.includes(k)) ? [1 << index] : []));
  const ignored = [LOCK_MASK, modBitFor([KEYSYM.Num_Lock]), modBitFor([KEYSYM.Scroll_Lock]), ...ownBits].filter(
    (bit, i, all) => bit !== 0 && (bit & modifiers) === 0 && all.indexOf(bit) === i,
  );
  let variants = [0];
  for (const bit of ignored) variants = [...variants, ...variants.map((mask) => mask | bit)];
  return { keycodes, modifiers, variants };
}

function maskOf(modifier: Modifier, modBitFor: (syms: readonly number[]) => number): number {
  if (modifier === 'ctrl') return CONTROL_MASK;
  if (modifier === 'shift') return SHIFT_MASK;
  for (const syms of MODIFIER_KEYSYMS[modifier]) {
    const bit = modBitFor(syms);
    if (bit) return bit;
  }
  return 0;
}

function samePlan(a: GrabPlan, b: GrabPlan): boolean {
  return a.modifiers === b.modifiers && a.keycodes.join() === b.keycodes.join() && a.variants.join() === b.variants.join();
}

function unavailable(detail: string, remedy: string): KotoError {
  return kotoError('HOTKEY_ERR_UNAVAILABLE', { backend: 'x11', detail, remedy });
}

export interface X11Tuning {
  /**
   * Ask the server (XKB PerClientFlags) to send held keys as repeated presses without the
   * release in between. Off only in tests, to exercise the release/press-pair filter that
   * servers without XKB rely on.
   */
  readonly detectableAutoRepeat: boolean;
}

/** The X11 backend with explicit tuning (tests); `openX11` is what the plugin uses. */
export function openX11With(tuning: X11Tuning): OpenBackend {
  return async (combo, onKey, options) => {
    const display = options.env.DISPLAY?.trim();
    if (!display) {
      const wayland = options.env.WAYLAND_DISPLAY?.trim();
      throw unavailable(
        wayland
          ? `DISPLAY is not set (this is a Wayland session, ${wayland}, without XWayland in the environment)`
          : 'DISPLAY is not set (no X session in this environment)',
        wayland ? 'use `hotkey.backend: evdev`, or bind `koto toggle` in your compositor (docs/daemon.md)' : CONNECT_REMEDY,
      );
    }
    const { client, info } = await connectX11(display, { timeoutMs: OPEN_TIMEOUT_MS }).catch((err: unknown) => {
      if (err instanceof X11ConnectError && err.reason === 'missing') {
        throw dependencyMissing({
          plugin: 'hotkey',
          package: 'x11',
          feature: 'the X11 hotkey (`hotkey.backend: x11`, or `auto` on X11)',
          alternative: 'use `hotkey.backend: evdev`, or bind `koto toggle` in your desktop settings',
        });
      }
      if (err instanceof X11ConnectError && err.reason === 'cookie') {
        throw unavailable(
          err.message,
          "point XAUTHORITY at your X session's cookie file (or unset it to use ~/.Xauthority), or use `hotkey.backend: evdev`",
        );
      }
      throw unavailable(`cannot connect to display ${display} (${describeError(err)})`, CONNECT_REMEDY);
    });
    const hotkey = new X11Hotkey(client, info, display, combo, onKey, options);
    await hotkey.start(tuning);
    return { backend: 'x11', keys: combo.text, where: display, close: () => hotkey.close() } satisfies HotkeyGrab;
  };
}

export const openX11: OpenBackend = openX11With({ detectableAutoRepeat: true });

class X11Hotkey {
  private state: 'opening' | 'open' | 'failed' | 'closed' = 'opening';
  private readonly root: number;
  /** What is grabbed right now. */
  private plan: GrabPlan | undefined;
  /** The keycode whose press was reported and whose release is still to come. */
  private down: number | null = null;
  /** A release held back for one round trip: the press of a repeat may follow it. */
  private pendingUp: { keycode: number; time: number; at: number } | null = null;
  private repeatLogged = false;
  private remapping: Promise<void> | null = null;
  private remapAgain = false;
  private closing: Promise<void> | undefined;
  /** The XKB extension's event code, once this client has initialised XKB. */
  private xkbEvent: number | undefined;
  /** Rejects the open in progress when the connection goes away under it. */
  private abortOpen: ((err: Error) => void) | undefined;

  private readonly client: XClient;
  private readonly info: XDisplay;
  private readonly display: string;
  private readonly combo: KeyCombo;
  private readonly onKey: (event: KeyEvent) => void;
  private readonly options: BackendOptions;

  constructor(
    client: XClient,
    info: XDisplay,
    display: string,
    combo: KeyCombo,
    onKey: (event: KeyEvent) => void,
    options: BackendOptions,
  ) {
    this.client = client;
    this.info = info;
    this.display = display;
    this.combo = combo;
    this.onKey = onKey;
    this.options = options;
    this.root = (info.screen[Number(client.screenNum)] ?? info.screen[0])!.root;
    client.on('error', (err: unknown) => {
      if (isXError(err)) this.options.log.debug(`x11 hotkey: X error ${err.message ?? err.error} (request ${err.majorOpcode ?? '?'})`);
      else this.lost(describeError(err));
    });
    client.on('end', () => this.lost('the server closed it'));
    client.stream?.on('close', () => this.lost('the socket closed'));
    client.on('event', (event: XEvent) => this.handle(event));
  }

  async start(tuning: X11Tuning): Promise<void> {
    const aborted = new Promise<never>((_, reject) => (this.abortOpen = reject));
    const timer = setTimeout(
      () => this.abortOpen?.(new Error(`display ${this.display} did not answer within ${OPEN_TIMEOUT_MS / 1000} s`)),
      OPEN_TIMEOUT_MS,
    );
    try {
      const plan = await Promise.race([this.readPlan(), aborted]);
      const detectable = tuning.detectableAutoRepeat ? await Promise.race([this.useXkb(), aborted]) : false;
      await Promise.race([this.grab(plan), aborted]);
      this.state = 'open';
      this.options.log.debug(
        `x11 hotkey: grabbed ${this.combo.text} on ${this.display} (keycodes ${plan.keycodes.join(', ')}, modifiers 0x${plan.modifiers.toString(16)}, ${plan.variants.length} variants; auto-repeat ${detectable ? 'detected by the server' : 'filtered from release/press pairs'})`,
      );
    } catch (err) {
      this.state = 'failed';
      // Graceful when the connection still works: the ungrabs of a partial grab reach the server first.
      await this.disconnect(true);
      if (KotoError.is(err)) throw err;
      throw unavailable(`cannot set up the hotkey on display ${this.display} (${describeError(err)})`, CONNECT_REMEDY);
    } finally {
      clearTimeout(timer);
      this.abortOpen = undefined;
    }
  }

  private async readPlan(): Promise<GrabPlan> {
    const first = this.info.min_keycode;
    const [keysyms, modifierMap] = await Promise.all([
      request<number[][]>((cb) => this.client.GetKeyboardMapping(first, this.info.max_keycode - first + 1, cb)),
      request<number[][]>((cb) => this.client.GetModifierMapping(cb)),
    ]);
    const plan = planGrab(this.combo, first, keysyms, modifierMap);
    if ('problem' in plan) {
      throw unavailable(
        `${plan.problem} on display ${this.display}`,
        'choose another key in `hotkey.keys`, or map it on your keyboard (setxkbmap, xmodmap)',
      );
    }
    return plan;
  }

  /**
   * XKB PerClientFlags with DetectableAutoRepeat: the server then leaves out the release of each
   * repeat, so a held key arrives as press, press, press… and one release. The `x11` package's XKB
   * module has no PerClientFlags request: it is sent here the way that module sends its own.
   * False when the server lacks XKB or refuses; the release/press filter then does the work.
   *
   * A client that has initialised XKB no longer gets the core MappingNotify (neither for a new
   * keymap from setxkbmap nor for xmodmap's core remapping, as measured on Xorg's Xvfb): it
   * selects XKB's NewKeyboardNotify and MapNotify (keysyms, modifier map) instead.
   */
  private async useXkb(): Promise<boolean> {
    try {
      const xkb = await request<XkbExtension>((cb) => this.client.require('xkb', cb));
      this.xkbEvent = xkb.firstEvent;
      const mapParts = XKB_KEY_SYMS_MASK | XKB_MODIFIER_MAP_MASK;
      const newKeyboard = 1 << XKB_NEW_KEYBOARD_NOTIFY;
      xkb.SelectEvents(XKB_USE_CORE_KBD, newKeyboard | (1 << XKB_MAP_NOTIFY), 0, newKeyboard, mapParts, mapParts);
      const client = this.client;
      const value = await new Promise<number>((resolve, reject) => {
        client.seq_num += 1;
        const body = Buffer.alloc(28);
        body.writeUInt8(xkb.majorOpcode, 0);
        body.writeUInt8(XKB_PER_CLIENT_FLAGS, 1);
        body.writeUInt16LE(body.length / 4, 2);
        body.writeUInt16LE(XKB_USE_CORE_KBD, 4);
        body.writeUInt32LE(XKB_PCF_DETECTABLE_AUTO_REPEAT, 8); // change
        body.writeUInt32LE(XKB_PCF_DETECTABLE_AUTO_REPEAT, 12); // value
        // ctrlsToChange, autoCtrls, autoCtrlValues stay 0.
        client.replies[client.seq_num] = [
          (reply) => reply.readUInt32LE(4), // after `supported`: the flags now in effect
          (err, flags) => {
            if (err) reject(err);
            else resolve(flags as number);
            return true;
          },
        ];
        client.pack_stream.put(body);
        client.pack_stream.submit(true);
      });
      return (value & XKB_PCF_DETECTABLE_AUTO_REPEAT) !== 0;
    } catch (err) {
      this.options.log.debug(
        `x11 hotkey: no detectable auto-repeat on ${this.display} (${describeError(err)}); filtering release/press pairs`,
      );
      return false;
    }
  }

  /** Grabs every variant of `plan`; on BadAccess releases what it got and rejects with HOTKEY_ERR_TAKEN. */
  private async grab(plan: GrabPlan): Promise<void> {
    const errors: XError[] = [];
    for (const keycode of plan.keycodes) {
      for (const variant of plan.variants) {
        this.client.GrabKey(this.root, 0, plan.modifiers | variant, keycode, GRAB_MODE_ASYNC, GRAB_MODE_ASYNC, (err) => {
          if (err) errors.push(err);
          return true;
        });
      }
    }
    // X errors come back asynchronously; after a round trip every grab has either failed or held.
    await this.client.sync();
    if (errors.length === 0) {
      this.plan = plan;
      return;
    }
    this.ungrab(plan);
    const first = errors[0]!;
    if (errors.some((err) => err.error === BAD_ACCESS)) {
      throw kotoError('HOTKEY_ERR_TAKEN', { keys: this.combo.text, display: this.display });
    }
    throw unavailable(
      `the X server refused the grab of ${this.combo.text} on display ${this.display} (${first.message ?? `X error ${first.error}`})`,
      'choose another combination in `hotkey.keys`',
    );
  }

  /** Releases every variant of `plan` (grabs this client does not hold are left alone by the server). */
  private ungrab(plan: GrabPlan): void {
    try {
      for (const keycode of plan.keycodes) {
        for (const variant of plan.variants) this.client.UngrabKey(this.root, keycode, plan.modifiers | variant);
      }
    } catch {
      // The client refuses requests once closing: the server drops the grabs with the connection.
    }
    if (this.plan === plan) this.plan = undefined;
  }

  private handle(event: XEvent): void {
    // 'opening' too: a press may arrive in the same read as the reply that confirmed the grab.
    if (this.state === 'failed' || this.state === 'closed') return;
    const type = event.type & 0x7f;
    if (type === KEY_PRESS) this.press(event.keycode ?? -1, event.time ?? 0);
    else if (type === KEY_RELEASE) this.release(event.keycode ?? -1, event.time ?? 0);
    else if (type === MAPPING_NOTIFY) {
      const request = (event as XEvent & { request?: number }).request;
      if ((request === MAPPING_KEYBOARD || request === MAPPING_MODIFIER) && this.state === 'open') this.remap();
    } else if (type === this.xkbEvent && this.state === 'open') {
      const xkbType = (event as XEvent & { xkbType?: number }).xkbType;
      if (xkbType === XKB_NEW_KEYBOARD_NOTIFY || xkbType === XKB_MAP_NOTIFY) this.remap();
    }
  }

  private press(keycode: number, time: number): void {
    const pending = this.pendingUp;
    if (pending && pending.keycode === keycode && pending.time === time) {
      // Without DetectableAutoRepeat a repeat is a release and a press with one timestamp.
      this.pendingUp = null;
      this.noteRepeat('release/press pair');
      return;
    }
    if (pending) this.flushUp();
    if (this.down !== null) {
      // With DetectableAutoRepeat a repeat is a press of the key already down; any other key
      // pressed meanwhile reaches us only because the grab holds the whole keyboard.
      if (keycode === this.down) this.noteRepeat('repeated press');
      return;
    }
    // During the grab the whole keyboard comes here: only the combo's own key counts.
    if (!this.plan?.keycodes.includes(keycode)) return;
    this.down = keycode;
    this.repeatLogged = false;
    this.emit({ type: 'down', at: now() });
  }

  /**
   * A release becomes 'up' once a round trip shows no repeat's press followed it. The server
   * writes a repeat's release and press in one go, but they can reach us in two reads (seen under
   * load), so waiting for the rest of the current read is not enough; the reply to a request sent
   * after the release comes after anything the server had already sent. This matters only where
   * DetectableAutoRepeat is missing, and costs one local round trip (well under a millisecond).
   */
  private release(keycode: number, time: number): void {
    // Compared with the key that went down, not the plan: a remap in between must not strand it.
    if (keycode !== this.down || this.pendingUp) return;
    const pending = { keycode, time, at: now() };
    this.pendingUp = pending;
    const settle = (): void => {
      if (this.pendingUp === pending) this.flushUp();
    };
    try {
      this.client.sync().then(settle, settle);
    } catch {
      // Closing: the client takes no more requests, and nothing more is reported.
    }
  }

  private flushUp(): void {
    const pending = this.pendingUp;
    if (!pending || this.state === 'failed' || this.state === 'closed') return;
    this.pendingUp = null;
    this.down = null;
    this.emit({ type: 'up', at: pending.at });
  }

  private noteRepeat(kind: string): void {
    if (this.repeatLogged) return;
    this.repeatLogged = true;
    this.options.log.debug(`x11 hotkey: auto-repeat of ${this.combo.text} ignored (${kind})`);
  }

  private emit(event: KeyEvent): void {
    try {
      this.onKey(event);
    } catch (err) {
      this.options.log.warn(`x11 hotkey: the key handler failed: ${describeError(err)}`);
    }
  }

  /** The keyboard or modifier map changed (setxkbmap, xmodmap, a new keyboard): grab what now carries the combo. */
  private remap(): void {
    if (this.remapping) {
      this.remapAgain = true;
      return;
    }
    this.remapping = (async () => {
      do {
        this.remapAgain = false;
        const plan = await this.readPlan();
        if (this.state !== 'open') return;
        if (this.plan && samePlan(plan, this.plan)) continue;
        if (this.plan) this.ungrab(this.plan);
        await this.grab(plan);
        this.options.log.debug(
          `x11 hotkey: keyboard map changed; ${this.combo.text} grabbed again (keycodes ${plan.keycodes.join(', ')}, modifiers 0x${plan.modifiers.toString(16)})`,
        );
      } while (this.remapAgain && this.state === 'open');
    })()
      .catch((err: unknown) => {
        if (this.state !== 'open') return;
        this.fail(
          KotoError.is(err)
            ? err
            : unavailable(
                `the keyboard map changed and the hotkey could not follow (${describeError(err)})`,
                'check `hotkey.keys` against the new keyboard layout',
              ),
        );
      })
      .finally(() => {
        this.remapping = null;
      });
  }

  private lost(reason: string): void {
    if (this.abortOpen) {
      this.abortOpen(new Error(`the connection closed (${reason})`));
      return;
    }
    if (this.state !== 'open') return;
    this.fail(
      unavailable(
        `lost the connection to display ${this.display} (${reason})`,
        `check that the X session on ${this.display} is still running; Koto grabs the hotkey again once it can reconnect`,
      ),
      false,
    );
  }

  /** After start: release everything and report once. */
  private fail(err: Error, connected = true): void {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.dropPendingUp();
    if (connected && this.plan) this.ungrab(this.plan);
    void this.disconnect(connected);
    try {
      this.options.onError(err);
    } catch (thrown) {
      this.options.log.warn(`x11 hotkey: the error handler failed: ${describeError(thrown)}`);
    }
  }

  private dropPendingUp(): void {
    this.pendingUp = null;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const graceful = this.state === 'open';
      this.state = 'closed';
      this.dropPendingUp();
      if (graceful && this.plan) this.ungrab(this.plan);
      await this.disconnect(graceful);
    })().catch((err: unknown) => {
      this.options.log.debug(`x11 hotkey: closing the connection to ${this.display}: ${describeError(err)}`);
    });
    return this.closing;
  }

  /** Graceful: a round trip first, so the ungrabs reach the server before the socket goes. */
  private disconnect(graceful: boolean): Promise<void> {
    const stream = this.client.stream;
    if (!stream || stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => stream.destroy(), CLOSE_TIMEOUT_MS);
      stream.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (!graceful) {
        stream.destroy();
        return;
      }
      try {
        this.client.close();
      } catch {
        stream.destroy();
      }
    });
  }
}
