/**
 * PUBLIC ENTRY POINT `koto-voice/x11`: talking to an X server without libX11 or helper
 * processes, for plugins that work with the X desktop (hotkeys, typing, focus). The connection
 * helper deals with what the underlying `x11` package gets wrong for a long-running process
 * (cookie files it would crash on, a display that never answers, an atom cache shared across
 * servers); the types describe the requests Koto's plugins use. Names here follow semver.
 *
 * @module
 */
export { connectX11, isXError, x11Request, xauthorityProblem, X11ConnectError } from './connect.ts';
export type { ConnectX11Options, X11Connection, X11ConnectFailure } from './connect.ts';
export type * from './types.ts';
