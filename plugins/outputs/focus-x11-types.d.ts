/**
 * The parts of the `x11` package that focused-window detection (focus.ts) uses, merged into the
 * declarations of plugins/hotkey/x11-types.d.ts (same ambient module).
 */
declare module 'x11' {
  export interface XProperty {
    /** The property's type atom; 0 (None) when the window has no such property. */
    type: number;
    format: number;
    bytesAfter: number;
    data: Buffer;
  }

  export interface XClient {
    /** InternAtom's cache (name → atom); the package shares one object between all clients. */
    atoms: Record<string, number>;
    InternAtom(onlyIfExists: boolean, name: string, cb: XCallback<number>): void;
    GetProperty(del: number, window: number, property: number, type: number, longOffset: number, longLength: number, cb: XCallback<XProperty>): void;
    GetInputFocus(cb: XCallback<{ focus: number; revertTo: number }>): void;
    QueryTree(window: number, cb: XCallback<{ root: number; parent: number; children: number[] }>): void;
    QueryPointer(window: number, cb: XCallback<{ root: number; child: number }>): void;
  }
}
