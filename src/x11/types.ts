/**
 * The part of the X protocol client (the pure-JS `x11` package, sidorares/node-x11, which has no
 * typings of its own) that Koto's desktop plugins use: the hotkey grab, the XTEST typer and the
 * focused-window lookup. One description for all of them, public through `koto-voice/x11`, so two
 * plugins never describe the same request differently. Callbacks of requests may return `true`
 * to say they handled an error; otherwise the client also emits it as an 'error' event.
 */
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

/** An X protocol error (BadAccess = 10, BadValue = 2, …) delivered to a request's callback. */
export interface XError extends Error {
  /** The X error code. */
  error: number;
  seq?: number;
  badParam?: number;
  majorOpcode?: number;
  minorOpcode?: number;
}

export interface XEvent {
  type: number;
  name?: string;
  seq: number;
  /** KeyPress/KeyRelease: the keycode. */
  keycode?: number;
  /** KeyPress/KeyRelease: the server timestamp (ms). */
  time?: number;
  /** KeyPress/KeyRelease: the modifier/button state before the event. */
  buttons?: number;
  /** ClientMessage: the message type atom and the data (5 numbers in format 32). */
  message_type?: number;
  data?: number[];
}

export interface XProperty {
  /** The property's type atom; 0 (None) when the window has no such property. */
  type: number;
  format: number;
  bytesAfter: number;
  data: Buffer;
}

export type XCallback<T> = (err: XError | Error | null | undefined, value: T) => unknown;

export interface XScreen {
  root: number;
}

export interface XDisplay {
  client: XClient;
  screen: XScreen[];
  min_keycode: number;
  max_keycode: number;
}

export interface XkbState {
  mods: number;
  baseMods: number;
  latchedMods: number;
  lockedMods: number;
  group: number;
  lockedGroup: number;
}

/** What an extension module hands back from `require` (the XKB one, here). */
export interface XkbExtension {
  majorOpcode: number;
  /** The code XKB events arrive with; their `xkbType` says which XKB event it is. */
  firstEvent: number;
  SelectEvents(deviceSpec: number, affectWhich: number, clear: number, selectAll: number, affectMap: number, map: number): void;
  GetState(deviceSpec: number, cb: XCallback<XkbState>): void;
  LatchLockState(
    deviceSpec: number,
    affectModLocks: number,
    modLocks: number,
    lockGroup: boolean,
    groupLock: number,
    affectModLatches: number,
    modLatches: number,
    latchGroup: boolean,
    groupLatch: number,
  ): void;
}

export interface XTestExtension {
  /** type: 2 KeyPress, 3 KeyRelease (buttons and motion too); time 0 = now. */
  FakeInput(type: number, detail: number, time: number, window: number, x: number, y: number): void;
}

export interface XClient extends EventEmitter {
  /** The socket; present once connected. */
  stream?: Duplex;
  screenNum: number | string;
  /** Internals the extension modules use to send requests the package does not implement. */
  seq_num: number;
  replies: Record<number, [((buf: Buffer, detail: number) => unknown) | undefined, (err: XError | null, value?: unknown) => unknown]>;
  pack_stream: { put(buf: Buffer): void; submit(expectsReply?: boolean): boolean };
  /** InternAtom's cache (name → atom); the package shares one object between all clients. */
  atoms: Record<string, number>;

  InternAtom(onlyIfExists: boolean, name: string, cb: XCallback<number>): void;
  GetProperty(
    deleteProperty: number,
    window: number,
    property: number,
    type: number,
    longOffset: number,
    longLength: number,
    cb: XCallback<XProperty>,
  ): void;
  GetInputFocus(cb: XCallback<{ focus: number; revertTo: number }>): void;
  QueryTree(window: number, cb: XCallback<{ root: number; parent: number; children: number[] }>): void;
  QueryPointer(window: number, cb: XCallback<{ root: number; child: number }>): void;
  /** The 32-byte bit vector of the keys that are down (bit k of byte k>>3: keycode k). */
  QueryKeymap(cb: XCallback<Buffer>): void;
  ChangeWindowAttributes(window: number, values: { eventMask?: number }, cb?: (err: XError | null) => unknown): void;
  /** eventMask 0 delivers to the window's owner (WM_PROTOCOLS messages). */
  SendClientMessage(
    destination: number,
    window: number,
    messageType: number,
    format: 32,
    data: number[],
    eventMask: number,
    cb?: (err: XError | null) => unknown,
  ): void;

  GetKeyboardMapping(firstKeycode: number, count: number, cb: XCallback<number[][]>): void;
  GetModifierMapping(cb: XCallback<number[][]>): void;
  GrabKey(
    window: number,
    ownerEvents: number,
    modifiers: number,
    keycode: number,
    pointerMode: number,
    keyboardMode: number,
    cb?: (err: XError | null) => unknown,
  ): void;
  UngrabKey(window: number, keycode: number, modifiers: number, cb?: (err: XError | null) => unknown): void;
  ChangeKeyboardMapping(firstKeycode: number, keysymsPerKeycode: number, keysyms: number[], cb?: (err: XError | null) => unknown): void;
  GetKeyboardControl(cb: XCallback<{ globalAutoRepeat: number }>): void;
  ChangeKeyboardControl(values: { autoRepeatMode?: number }, cb?: (err: XError | null) => unknown): void;
  require(name: 'xkb', cb: XCallback<XkbExtension>): void;
  require(name: 'xtest', cb: XCallback<XTestExtension>): void;
  /** A round trip: resolves once the server has processed every request sent before it. */
  sync(): Promise<void>;
  /** Round trip, then closes; `cb` runs once the socket is gone. */
  close(cb?: (err?: Error) => void): void;
  terminate(): void;
}
