/**
 * The further parts of the `x11` package that the X11 typer uses, merged into the declarations
 * of plugins/hotkey/x11-types.d.ts (same ambient module).
 */
declare module 'x11' {
  export interface XkbState {
    mods: number;
    baseMods: number;
    latchedMods: number;
    lockedMods: number;
    group: number;
    lockedGroup: number;
  }

  export interface XkbExtension {
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

  export interface XEvent {
    /** ClientMessage: the message type atom and the data (5 numbers in format 32). */
    message_type?: number;
    data?: number[];
  }

  export interface XClient {
    /** The 32-byte bit vector of the keys that are down (bit k of byte k>>3: keycode k). */
    QueryKeymap(cb: XCallback<Buffer>): void;
    InternAtom(onlyIfExists: boolean, name: string, cb: XCallback<number>): void;
    GetInputFocus(cb: XCallback<{ focus: number; revertTo: number }>): void;
    GetProperty(
      deleteProperty: number,
      window: number,
      property: number,
      type: number,
      longOffset: number,
      longLength: number,
      cb: XCallback<{ type: number; format: number; bytesAfter: number; data: Buffer }>,
    ): void;
    QueryTree(window: number, cb: XCallback<{ root: number; parent: number; children: number[] }>): void;
    ChangeWindowAttributes(window: number, values: { eventMask?: number }, cb?: (err: XError | null) => unknown): void;
    /** eventMask 0 delivers to the window's owner (WM_PROTOCOLS messages). */
    SendClientMessage(destination: number, window: number, messageType: number, format: 32, data: number[], eventMask: number, cb?: (err: XError | null) => unknown): void;
  }
}
