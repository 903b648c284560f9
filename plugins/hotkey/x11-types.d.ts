/**
 * The part of the `x11` package (sidorares/node-x11, plain JS, no typings of its own) that the
 * X11 hotkey backend and its tests use. Callbacks of requests may return `true` to say they
 * handled an error; otherwise the client also emits it as an 'error' event.
 */
declare module 'x11' {
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

  /** What an extension module hands back from `require` (the XKB one, here). */
  export interface XkbExtension {
    majorOpcode: number;
    /** The code XKB events arrive with; their `xkbType` says which XKB event it is. */
    firstEvent: number;
    SelectEvents(deviceSpec: number, affectWhich: number, clear: number, selectAll: number, affectMap: number, map: number): void;
    GetState(deviceSpec: number, cb: XCallback<{ mods: number; lockedMods: number }>): void;
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

    GetKeyboardMapping(firstKeycode: number, count: number, cb: XCallback<number[][]>): void;
    GetModifierMapping(cb: XCallback<number[][]>): void;
    GrabKey(window: number, ownerEvents: number, modifiers: number, keycode: number, pointerMode: number, keyboardMode: number, cb?: (err: XError | null) => unknown): void;
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

  export function createClient(options: { display?: string; disableBigRequests?: boolean }, cb: (err: Error | undefined, display: XDisplay) => void): XClient;
}
