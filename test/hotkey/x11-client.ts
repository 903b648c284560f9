/**
 * A second, plain X client for the hotkey tests (the `x11` package, as the backend uses): another
 * program that grabs keys, reads the lock state, switches server auto-repeat on and edits the
 * keyboard map, so the tests can set up and check what they assert on a real Xvfb.
 */
import { createClient, type XClient, type XDisplay, type XError, type XEvent, type XkbExtension, type XTestExtension } from 'x11';

export interface OtherClient {
  readonly root: number;
  /** The server's keyboard map: keysym rows from `first`, and the 8 modifier rows of keycodes. */
  keyboard(): Promise<{ first: number; keysyms: number[][]; modifiers: number[][] }>;
  /** GrabKey on the root window; resolves with the X error it caused, or null. */
  grab(keycode: number, modifiers: number): Promise<XError | null>;
  /** Key presses this client received through its grabs (keycodes). */
  readonly pressed: number[];
  /** The locked modifiers (XKB): Caps Lock sets 2, Num Lock its Mod bit. */
  lockedMods(): Promise<number>;
  /** Turns server auto-repeat on; resolves with what the server then reports (1 = on). */
  autoRepeatOn(): Promise<number>;
  /** Presses (or releases) one keycode through XTEST, nothing else along with it. */
  fakeKey(keycode: number, down: boolean): Promise<void>;
  /** Replaces the keysym rows of the keycodes from `first` (what xmodmap does). */
  setKeysyms(first: number, rows: number[][]): Promise<void>;
  close(): Promise<void>;
}

function request<T>(send: (cb: (err: XError | Error | null | undefined, value: T) => unknown) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    send((err, value) => {
      if (err) reject(err);
      else resolve(value);
      return true;
    });
  });
}

export async function openOtherClient(display: string): Promise<OtherClient> {
  const { client, info } = await new Promise<{ client: XClient; info: XDisplay }>((resolve, reject) => {
    const client = createClient({ display, disableBigRequests: true }, (err, info) => (err ? reject(err) : resolve({ client, info })));
    client.on('error', (err: Error) => reject(err));
  });
  const root = info.screen[0]!.root;
  const pressed: number[] = [];
  client.on('event', (event: XEvent) => {
    if (event.type === 2 && event.keycode !== undefined) pressed.push(event.keycode);
  });
  let xkb: XkbExtension | undefined;
  let xtest: XTestExtension | undefined;
  return {
    root,
    pressed,
    async keyboard() {
      const first = info.min_keycode;
      const keysyms = await request<number[][]>((cb) => client.GetKeyboardMapping(first, info.max_keycode - first + 1, cb));
      const modifiers = await request<number[][]>((cb) => client.GetModifierMapping(cb));
      return { first, keysyms, modifiers };
    },
    async grab(keycode, modifiers) {
      let error: XError | null = null;
      client.GrabKey(root, 0, modifiers, keycode, 1, 1, (err) => {
        error = err;
        return true;
      });
      await client.sync();
      return error;
    },
    async lockedMods() {
      xkb ??= await request<XkbExtension>((cb) => client.require('xkb', cb));
      const state = await request<{ lockedMods: number }>((cb) => xkb!.GetState(0x100, cb));
      return state.lockedMods;
    },
    async autoRepeatOn() {
      client.ChangeKeyboardControl({ autoRepeatMode: 1 });
      const control = await request<{ globalAutoRepeat: number }>((cb) => client.GetKeyboardControl(cb));
      return control.globalAutoRepeat;
    },
    async fakeKey(keycode, down) {
      xtest ??= await request<XTestExtension>((cb) => client.require('xtest', cb));
      xtest.FakeInput(down ? 2 : 3, keycode, 0, root, 0, 0);
      await client.sync();
    },
    async setKeysyms(first, rows) {
      const width = rows[0]!.length;
      client.ChangeKeyboardMapping(first, width, rows.flat());
      await client.sync();
    },
    close: () => new Promise<void>((resolve) => client.close(() => resolve())),
  };
}
