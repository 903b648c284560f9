import { definePlugin } from 'koto-voice';
import { detectFocusedWindow } from './detect.ts';

/**
 * Serves the `focusedWindow` hook on the desktops that can answer (X11, sway, Hyprland, KDE with
 * kdotool, macOS): what profiles and the paste output key on. Nothing is opened until asked; each
 * lookup connects, asks and closes (no state to release at close).
 */
export default definePlugin({
  name: 'focus',
  apply(api) {
    api.hooks.focusedWindow.tapPromise('focus', (request) => detectFocusedWindow(request.env, request.signal));
  },
});
