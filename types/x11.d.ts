/**
 * The `x11` package (sidorares/node-x11) is plain JS without typings. Its types are described
 * once in src/x11/types.ts (public through `koto-voice/x11`); this ambient module only ties them
 * to the package for the code that loads it (src/x11/connect.ts and the X11 test clients).
 */
declare module 'x11' {
  import type { XClient, XDisplay } from 'koto-voice/x11';
  export type * from 'koto-voice/x11';
  export function createClient(
    options: { display?: string; disableBigRequests?: boolean },
    cb: (err: Error | undefined, display: XDisplay) => void,
  ): XClient;
}
