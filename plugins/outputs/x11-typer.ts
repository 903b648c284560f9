/**
 * Typing on X11 through the server's XTEST extension, spoken by the pure-JS `x11` package (no
 * xdotool, no libX11). Exact where xdotool is not:
 *
 * - Characters that are not on the keyboard map (é on a US map, emoji, CJK) are typed on spare
 *   keycodes (two per keycode: plain and Shift), all mapped before the first key of a batch and
 *   changed again only once the focused application has read the keys (it answered a ping) or
 *   after a pause. xdotool remaps a key per character and restores it at once: an application
 *   that looks the key up late gets the next character's mapping (a swap) or none (a drop).
 *   Every mapping change makes every X client reload its keyboard map (openbox needs ~70 ms of
 *   CPU each time): hence few changes — one per run of consecutive spare keycodes per batch,
 *   runs longest first, and no restore between batches.
 * - Newline is the Return key and tab the Tab key (xdotool sends Linefeed, which GTK ignores).
 * - Modifiers the user still holds (the hotkey!) are released first, and Caps Lock, other locked
 *   modifiers and a locked layout group are cleared for the typing and put back afterwards: each
 *   key event carries the modifier state of the moment the server processes it, so restoring
 *   the locks right after the last key is safe. A modifier key still held physically is released
 *   only in the server's view; Koto does not press it again (it would stay down if the user let
 *   go meanwhile): press it again to use it.
 */
import { describeError } from 'koto-voice';
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
  type XTestExtension,
} from 'koto-voice/x11';
import { DesktopError, sleep } from './desktop.ts';
import { contiguousRuns, KEYSYM, planTyping, type Batch, type Stroke, type TypingPlan } from './x11-typer-plan.ts';

/**
 * Waits measured under Xvfb with openbox on a loaded 2-core machine (test/outputs/type-apps.test.ts):
 * xterm, rxvt-unicode and a GTK text view, every character exact in every run.
 */
export const X11_TYPING = {
  /**
   * After the spare keycodes are mapped and a round trip has confirmed it (the server has then
   * sent every client its MappingNotify), before the first key: time for the applications to
   * take the new map in. Events reach a client in order, so the MappingNotify is always read
   * before the keys; this covers toolkits that refresh their keymap asynchronously.
   */
  mapSettleMs: 50,
  /**
   * The spare keycodes lose their characters again only once the focused application has read
   * the keys: it translates a key when it gets to the event, which on a loaded machine can be
   * long after the server delivered it. An application that answers _NET_WM_PING (GTK, Qt,
   * rxvt-unicode, browsers) has read every earlier event when it answers; `afterPingMs` covers
   * an input method that translates after the application. Others (xterm) get `restoreDelayMs`.
   */
  afterPingMs: 100,
  restoreDelayMs: 1000,
  /** The longest wait for the answer to the ping (a hung application must not keep the keys mapped forever). */
  pingTimeoutMs: 10_000,
} as const;

const OPEN_TIMEOUT_MS = 5000;
const KEY_PRESS = 2;
const KEY_RELEASE = 3;
const XKB_USE_CORE_KBD = 0x100;
const ATOM = 4;
const SUBSTRUCTURE_NOTIFY = 1 << 19;
/** Round trip every so many keys: the server has then processed them, which bounds what is queued ahead of it. */
const SYNC_EVERY = 32;

export interface XTestTypeOptions {
  readonly display: string;
  readonly keyDelayMs: number;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  readonly debug?: ((message: string) => void) | undefined;
}

/** XTEST typing could not start: nothing was typed, so another tool may type the text. */
export class XTestUnavailable extends DesktopError {
  constructor(message: string) {
    super(message, undefined, 'failed');
  }
}

/**
 * Types `text` into the focused window. Rejects with XTestUnavailable when nothing was typed
 * (no connection, no XTEST, no spare keycode for a character off the map), with a DesktopError
 * otherwise (reason 'timeout' or 'aborted' when the deadline or the signal stopped it).
 */
export async function typeWithXTest(text: string, options: XTestTypeOptions): Promise<{ plan: TypingPlan }> {
  if (options.signal?.aborted) throw new DesktopError('the session was cancelled', undefined, 'aborted');
  let client: XClient;
  let info: XDisplay;
  try {
    // Guards a display that accepts the connection and never answers; not a speed limit.
    ({ client, info } = await connectX11(options.display, { timeoutMs: OPEN_TIMEOUT_MS }));
  } catch (err) {
    // x11 is an optional dependency: without it, typing goes through xdotool.
    if (err instanceof X11ConnectError && err.reason === 'missing') throw new XTestUnavailable(err.message);
    // Worded like xdotool's "Can't open display", which the output's fix for an unreachable display recognises.
    throw new XTestUnavailable(`cannot open display ${options.display} (${describeError(err)})`);
  }
  const session = new XTestSession(client, info, options);
  try {
    return { plan: await session.run(text) };
  } finally {
    await session.close();
  }
}

class XTestSession {
  private readonly stop = new AbortController();
  private readonly stopped: Promise<never>;
  private xtest: XTestExtension | undefined;
  private xkb: XkbExtension | undefined;
  /** Spare keycodes carrying a character right now. */
  private mapped: number[] = [];
  private shiftDown: number | undefined;
  private locks: { mods: number; group: number } | undefined;
  private sent = 0;
  private total = 0;
  /** The window that answers _NET_WM_PING for the focused application: undefined until looked up, null for none. */
  private pingWindow: number | null | undefined;
  private atoms: { protocols: number; ping: number } | undefined;
  private readonly pongs = new Map<number, () => void>();
  private pings = 0;
  /** The deadline: it guards Koto's own work; waiting for the application (bounded by pingTimeoutMs) moves it on. */
  private deadline: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly onAbort = () => this.halt(new DesktopError('the session was cancelled', undefined, 'aborted'));

  constructor(
    private readonly client: XClient,
    private readonly info: XDisplay,
    private readonly options: XTestTypeOptions,
  ) {
    this.stopped = new Promise<never>((_, reject) => {
      this.stop.signal.addEventListener('abort', () => reject(this.stop.signal.reason), { once: true });
    });
    this.stopped.catch(() => {});
    this.deadline = Date.now() + options.timeoutMs;
    this.armDeadline();
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    client.on('error', (err: unknown) => {
      // X errors of requests with a callback go to that callback; anything here is the connection.
      if (!isXError(err)) this.halt(new DesktopError(`the connection to display ${options.display} failed (${describeError(err)})`));
    });
    client.on('end', () => this.halt(new DesktopError(`the connection to display ${options.display} closed`)));
    client.on('event', (event: XEvent) => {
      const data = event.data;
      if (event.name === 'ClientMessage' && this.atoms && data?.[0] === this.atoms.ping) this.pongs.get(data[1]!)?.();
    });
  }

  private armDeadline(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.halt(new DesktopError(`typing did not finish within ${this.options.timeoutMs} ms`, undefined, 'timeout')),
      Math.max(0, this.deadline - Date.now()),
    );
  }

  /**
   * Waiting for the applications (map settle, ping, restore pause) is not Koto's time: each wait
   * is bounded by itself, and the deadline moves on by it, so a text of many characters off the
   * layout (CJK: one batch per spare-keycode-full) does not run out of time. Cancelling still works.
   */
  private async applicationTime<T>(work: () => Promise<T>): Promise<T> {
    const started = Date.now();
    clearTimeout(this.timer);
    try {
      return await work();
    } finally {
      this.deadline += Date.now() - started;
      if (!this.stop.signal.aborted) this.armDeadline();
    }
  }

  private halt(err: DesktopError): void {
    if (!this.stop.signal.aborted) this.stop.abort(err);
  }

  /** Awaits `work` unless the deadline, the signal or a lost connection comes first. */
  private step<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.stopped]);
  }

  private wait(ms: number): Promise<void> {
    // The signal clears the timer when typing stops: nothing keeps the process alive after it.
    return this.step(sleep(ms, this.stop.signal));
  }

  async run(text: string): Promise<TypingPlan> {
    let plan: TypingPlan;
    try {
      this.xtest = await this.step(request<XTestExtension>((cb) => this.client.require('xtest', cb)));
      const first = this.info.min_keycode;
      const [rows, modifierMap] = await this.step(
        Promise.all([
          request<number[][]>((cb) => this.client.GetKeyboardMapping(first, this.info.max_keycode - first + 1, cb)),
          request<number[][]>((cb) => this.client.GetModifierMapping(cb)),
        ]),
      );
      const planned = planTyping(text, { firstKeycode: first, rows, modifierMap });
      if ('problem' in planned) throw new XTestUnavailable(planned.problem);
      plan = planned;
      this.xkb = await this.step(request<XkbExtension>((cb) => this.client.require('xkb', cb))).catch((err: unknown) => {
        if (err instanceof DesktopError) throw err;
        return undefined; // without XKB only held modifier keys are cleared
      });
      await this.clearModifiers(modifierMap, rows, first);
    } catch (err) {
      if (err instanceof DesktopError) throw err;
      throw new XTestUnavailable(`the X server's XTEST extension cannot be used (${describeError(err)})`);
    }

    this.total = plan.strokes;
    this.options.debug?.(
      `xtest: ${plan.strokes} keys in ${plan.batches.length} batch(es), ${new Set(plan.batches.flatMap((b) => b.remap.flatMap((r) => r.keysyms.filter((k) => k !== 0)))).size} character(s) on spare keycodes` +
        (plan.skipped ? `; ${plan.skipped} control character(s) left out` : ''),
    );
    try {
      for (const batch of plan.batches) {
        if (batch.remap.length > 0) await this.map(batch.remap);
        await this.typeStrokes(batch.strokes, plan.shiftKeycode);
        // The next batch's mapping, or the restore, only once the application has read these keys.
        if (batch.remap.length > 0) {
          await this.applicationTime(async () =>
            this.wait((await this.focusedAppCaughtUp()) ? X11_TYPING.afterPingMs : X11_TYPING.restoreDelayMs),
          );
        }
      }
      await this.unmap();
      return plan;
    } catch (err) {
      if (err instanceof DesktopError && err.reason !== 'failed') throw err;
      throw new DesktopError(`typing stopped after ${this.sent} of ${this.total} keys (${describeError(err)})`);
    }
  }

  /**
   * Releases the modifier keys that are down and clears locked and latched modifiers (all but
   * Num Lock, which only the keypad heeds) and a locked layout group, remembering the locks.
   */
  private async clearModifiers(modifierMap: number[][], rows: number[][], first: number): Promise<void> {
    const down = await this.step(request<Buffer>((cb) => this.client.QueryKeymap(cb)));
    const held = [...new Set(modifierMap.flat())].filter((k) => k !== 0 && (down[k >> 3]! & (1 << (k & 7))) !== 0);
    for (const keycode of held) this.xtest!.FakeInput(KEY_RELEASE, keycode, 0, 0, 0, 0);
    if (held.length > 0) this.options.debug?.(`xtest: released the modifier keys held down (keycodes ${held.join(', ')})`);
    if (!this.xkb) return;
    const state = await this.step(
      request<{ lockedMods: number; latchedMods: number; lockedGroup: number }>((cb) => this.xkb!.GetState(XKB_USE_CORE_KBD, cb)),
    );
    const numLock = modifierMap.reduce(
      (mask, row, index) => (row.some((k) => k !== 0 && rows[k - first]?.[0] === KEYSYM.Num_Lock) ? mask | (1 << index) : mask),
      0,
    );
    const mods = state.lockedMods & ~numLock;
    if (mods === 0 && state.lockedGroup === 0 && state.latchedMods === 0) return;
    this.locks = { mods, group: state.lockedGroup };
    this.xkb.LatchLockState(XKB_USE_CORE_KBD, mods, 0, state.lockedGroup !== 0, 0, 0xff, 0, false, 0);
    this.options.debug?.(`xtest: cleared locked modifiers 0x${mods.toString(16)} and group ${state.lockedGroup} for the typing`);
  }

  private async restoreLocks(): Promise<void> {
    const locks = this.locks;
    if (!locks || !this.xkb) return;
    this.locks = undefined;
    this.xkb.LatchLockState(XKB_USE_CORE_KBD, locks.mods, locks.mods, locks.group !== 0, locks.group, 0, 0, false, 0);
  }

  /**
   * Pings the focused application (_NET_WM_PING, answered to the root window) and resolves true
   * once it answered: it has then handled every key sent before. False when it does not take
   * pings or does not answer within pingTimeoutMs.
   */
  private async focusedAppCaughtUp(): Promise<boolean> {
    const window = await this.findPingWindow().catch((err: unknown) => {
      if (this.stop.signal.aborted) throw err;
      return null;
    });
    if (!window || !this.atoms) return false;
    const token = ((Date.now() & 0x7fffffff) + (this.pings += 1)) >>> 0;
    let timer: NodeJS.Timeout | undefined;
    const answer = new Promise<boolean>((resolve) => {
      this.pongs.set(token, () => resolve(true));
      timer = setTimeout(() => resolve(false), X11_TYPING.pingTimeoutMs);
    });
    try {
      this.client.SendClientMessage(window, window, this.atoms.protocols, 32, [this.atoms.ping, token, window, 0, 0], 0, () => true);
      const caughtUp = await this.step(answer);
      this.options.debug?.(
        caughtUp
          ? 'xtest: the focused application answered a ping: it has read the keys'
          : `xtest: the focused application did not answer a ping within ${X11_TYPING.pingTimeoutMs} ms`,
      );
      return caughtUp;
    } finally {
      clearTimeout(timer);
      this.pongs.delete(token);
    }
  }

  /** The focused window, or its nearest ancestor, that lists _NET_WM_PING in WM_PROTOCOLS. */
  private async findPingWindow(): Promise<number | null> {
    if (this.pingWindow !== undefined) return this.pingWindow;
    this.pingWindow = null;
    const [protocols, ping] = await this.step(
      Promise.all([
        request<number>((cb) => this.client.InternAtom(false, 'WM_PROTOCOLS', cb)),
        request<number>((cb) => this.client.InternAtom(false, '_NET_WM_PING', cb)),
      ]),
    );
    this.atoms = { protocols, ping };
    const root = (this.info.screen[Number(this.client.screenNum)] ?? this.info.screen[0])!.root;
    let { focus: window } = await this.step(request<{ focus: number }>((cb) => this.client.GetInputFocus(cb)));
    // 0 is None, 1 PointerRoot; a few levels cover toolkits that focus a child of the top-level window.
    for (let hops = 0; window > 1 && window !== root && hops < 8; hops += 1) {
      const property = await this.step(request<{ data: Buffer }>((cb) => this.client.GetProperty(0, window, protocols, ATOM, 0, 64, cb)));
      const listed = Array.from({ length: property.data.length >> 2 }, (_, i) => property.data.readUInt32LE(i * 4));
      if (listed.includes(ping)) {
        // The answer goes to the root window, to clients that selected SubstructureNotify there.
        this.client.ChangeWindowAttributes(root, { eventMask: SUBSTRUCTURE_NOTIFY }, () => true);
        this.pingWindow = window;
        return window;
      }
      window = (await this.step(request<{ parent: number }>((cb) => this.client.QueryTree(window, cb)))).parent;
    }
    return null;
  }

  /**
   * Maps a batch's spare keycodes (and clears those of the previous batch it does not reuse),
   * one ChangeKeyboardMapping per run of consecutive keycodes, then waits for the server and
   * the clients.
   */
  private async map(rows: Batch['remap']): Promise<void> {
    const next = new Map<number, readonly [number, number]>(rows.map((row) => [row.keycode, row.keysyms]));
    for (const keycode of this.mapped) if (!next.has(keycode)) next.set(keycode, [0, 0]);
    // Until the server confirmed, every keycode touched may carry a character: close() clears them all.
    this.mapped = [...next.keys()];
    const errors: Array<XError | null> = [];
    for (const run of contiguousRuns([...next].map(([keycode, keysyms]) => ({ keycode, keysyms })))) {
      this.client.ChangeKeyboardMapping(run.first, 2, run.keysyms, (err) => {
        errors.push(err);
        return true;
      });
    }
    await this.step(this.client.sync());
    const failed = errors.find(Boolean);
    if (failed) throw new DesktopError(`the X server refused to map spare keycodes (${failed.message ?? `X error ${failed.error}`})`);
    this.mapped = rows.map((row) => row.keycode);
    await this.applicationTime(() => this.wait(X11_TYPING.mapSettleMs));
  }

  /** Clears the spare keycodes again (requests queued; the caller's round trip or close sends them). */
  private clearMapped(): void {
    if (this.mapped.length === 0) return;
    const runs = contiguousRuns(this.mapped.map((keycode) => ({ keycode, keysyms: [0, 0] as const })));
    this.mapped = [];
    for (const run of runs) this.client.ChangeKeyboardMapping(run.first, 2, run.keysyms, () => true);
  }

  private async unmap(): Promise<void> {
    this.clearMapped();
    await this.step(this.client.sync());
  }

  private async typeStrokes(strokes: readonly Stroke[], shiftKeycode: number | undefined): Promise<void> {
    const xtest = this.xtest!;
    for (let i = 0; i < strokes.length; i += 1) {
      if (this.stop.signal.aborted) await this.stopped;
      const { keycode, shift } = strokes[i]!;
      if (shift) {
        xtest.FakeInput(KEY_PRESS, shiftKeycode!, 0, 0, 0, 0);
        this.shiftDown = shiftKeycode;
      }
      // Press and release in one write: a pause between them could make the server auto-repeat.
      xtest.FakeInput(KEY_PRESS, keycode, 0, 0, 0, 0);
      xtest.FakeInput(KEY_RELEASE, keycode, 0, 0, 0, 0);
      if (shift) {
        xtest.FakeInput(KEY_RELEASE, shiftKeycode!, 0, 0, 0, 0);
        this.shiftDown = undefined;
      }
      this.sent += 1;
      if (this.options.keyDelayMs > 0) await this.wait(this.options.keyDelayMs);
      if ((i + 1) % SYNC_EVERY === 0) await this.step(this.client.sync());
    }
    await this.step(this.client.sync());
  }

  /** Puts back what the typing changed (a key down, the spare keycodes, the locks), then disconnects. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.options.signal?.removeEventListener('abort', this.onAbort);
    const stream = this.client.stream;
    if (!stream || stream.destroyed) return;
    try {
      if (this.shiftDown !== undefined) this.xtest?.FakeInput(KEY_RELEASE, this.shiftDown, 0, 0, 0, 0);
      this.clearMapped();
      await this.restoreLocks();
    } catch {
      // the connection is going: the server keeps what it has
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => stream.destroy(), 2000);
      stream.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        this.client.close();
      } catch {
        stream.destroy();
      }
    });
  }
}

/**
 * Types with XTEST; when that cannot start (no connection, no XTEST), with `xdotool` instead.
 * Never both: once a key went out, a failure is reported, not typed again by another tool.
 */
export async function typeOnX11(text: string, options: Omit<XTestTypeOptions, 'display'>, xdotool: () => Promise<string>): Promise<string> {
  try {
    await typeWithXTest(text, { ...options, display: process.env.DISPLAY ?? '' });
    return 'xtest';
  } catch (err) {
    if (!(err instanceof XTestUnavailable)) throw err;
    options.debug?.(`xtest: ${err.message}; typing with xdotool instead`);
    try {
      return await xdotool();
    } catch (fallback) {
      if (!(fallback instanceof DesktopError) || fallback.reason === 'aborted') throw fallback;
      throw new DesktopError(`XTEST typing failed: ${err.message}; ${fallback.message}`, fallback.hint, fallback.reason);
    }
  }
}
