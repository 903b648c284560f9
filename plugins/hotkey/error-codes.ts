import type { PluginErrorCode, PluginErrorSpec } from 'koto-voice';

/**
 * The hotkey's own codes (`definePlugin({ errors })`, once the kernel's KOTO_ERR_HOTKEY_*): only
 * this plugin grabs keys. Exit 3: each is fixed by changing the setup or `hotkey` settings.
 */
export const HOTKEY_ERRORS = {
  HOTKEY_ERR_TAKEN: {
    message: 'the hotkey "{keys}" is already grabbed by another program on display {display}',
    fix: 'choose another combination in `hotkey.keys`, or remove it from the program that holds it (a desktop shortcut, another dictation tool)',
    exit: 3,
  },
  HOTKEY_ERR_PERMISSION: {
    message: 'Koto cannot read the keyboard devices ({detail})',
    fix: 'add yourself to the input group: `sudo usermod -aG input $USER`, then log out and back in; or use `hotkey.backend: x11` on X11, or bind `koto toggle` in your compositor (docs/daemon.md)',
    exit: 3,
  },
  HOTKEY_ERR_UNAVAILABLE: {
    message: 'the {backend} hotkey cannot run: {detail}',
    fix: '{remedy}',
    exit: 3,
  },
} as const satisfies Record<PluginErrorCode, PluginErrorSpec>;
