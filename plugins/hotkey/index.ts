import { definePlugin, KotoError, kotoError, parseKeyCombo, type DaemonHost, type KotoConfig, type Logger } from 'koto-voice';
import type { HotkeyGrab, KeyEvent, OpenBackend } from './backend.ts';
import { HOTKEY_ERRORS } from './error-codes.ts';

type HotkeyConfig = KotoConfig['hotkey'];

/** After the backend failed at run time (X server restarted, keyboard unplugged), try again this often. */
const REOPEN_MS = 5000;

/**
 * hotkey: the daemon's built-in global hotkey, a trigger like the control socket. A passive X11
 * grab (x11.ts) or the keyboards under /dev/input (evdev.ts); hold or toggle. Only the daemon
 * calls the `daemon` hook, so a one-shot command never grabs a key. The combination follows the
 * config: an edit re-grabs without a restart.
 */
export default definePlugin({
  name: 'hotkey',
  errors: HOTKEY_ERRORS,
  apply(api) {
    let controller: HotkeyController | undefined;
    api.hooks.daemon.tapPromise('hotkey', async (host) => {
      controller = new HotkeyController(host, api.log, api.env);
      host.signal.addEventListener('abort', () => void controller?.close(), { once: true });
      // Not awaited: a display that is slow to answer must not hold up the daemon's start
      // (status shows the hotkey once it is grabbed, or why it is not).
      void controller.configure(api.config().hotkey);
    });
    api.hooks.configChanged.tap('hotkey', (change) => {
      if (change.sections.includes('hotkey')) void controller?.configure(change.config.hotkey);
    });
  },
});

class HotkeyController {
  readonly #host: DaemonHost;
  readonly #log: Logger;
  readonly #env: Readonly<NodeJS.ProcessEnv>;
  #config: HotkeyConfig | undefined;
  #grab: HotkeyGrab | undefined;
  /** Config changes apply one at a time, in order. */
  #applying: Promise<void> = Promise.resolve();
  /** Trigger actions run one after another: a release must not overtake the start it ends. */
  #actions: Promise<unknown> = Promise.resolve();
  #down = false;
  #reopen: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(host: DaemonHost, log: Logger, env: Readonly<NodeJS.ProcessEnv>) {
    this.#host = host;
    this.#log = log;
    this.#env = env;
  }

  configure(config: HotkeyConfig): Promise<void> {
    this.#applying = this.#applying.then(() => this.#apply(config));
    return this.#applying;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reopen);
    await this.#applying.catch(() => undefined);
    await this.#release();
    this.#host.report('hotkey', undefined);
  }

  async #apply(config: HotkeyConfig): Promise<void> {
    if (this.#closed) return;
    const same = this.#config && this.#grab && JSON.stringify(this.#config) === JSON.stringify(config);
    if (same) return;
    this.#config = config;
    clearTimeout(this.#reopen);
    await this.#release();
    if (!config.keys) return this.#host.report('hotkey', undefined);
    const parsed = parseKeyCombo(config.keys);
    // The config schema checked it already; a Node API caller may pass anything.
    if (!parsed.ok)
      return this.#failed(config, kotoError('KOTO_ERR_CONFIG_INVALID', { file: 'config', detail: `hotkey.keys ${parsed.problem}` }));
    const backend = this.#backendFor(config);
    try {
      const open = await loadBackend(backend);
      const grab = await open(parsed.combo, (event) => this.#onKey(config, event), {
        env: this.#env,
        log: this.#log,
        devices: config.devices,
        onError: (err) => this.#lost(config, err),
      });
      if (this.#closed || this.#config !== config) {
        await grab.close();
        return;
      }
      this.#grab = grab;
      this.#log.info(`hotkey ${grab.keys} (${config.mode}) grabbed through ${grab.backend} on ${grab.where}`);
      this.#host.report('hotkey', {
        keys: grab.keys,
        mode: config.mode,
        backend: grab.backend,
        where: grab.where,
        active: true,
        summary: `hotkey ${grab.keys} (${grab.backend}, ${config.mode})`,
      });
    } catch (err) {
      this.#failed(config, err, backend);
    }
  }

  #backendFor(config: HotkeyConfig): 'x11' | 'evdev' {
    if (config.backend !== 'auto') return config.backend;
    // X11 first: a passive grab keeps the combination away from the focused app and needs no
    // permissions. Without a display (Wayland without XWayland, the console): the keyboards.
    return this.#env.DISPLAY ? 'x11' : 'evdev';
  }

  #onKey(config: HotkeyConfig, event: KeyEvent): void {
    if (this.#config !== config) return;
    if (event.type === 'down') {
      if (this.#down) return;
      this.#down = true;
      this.#dispatch(config.mode === 'hold' ? 'start' : 'toggle', event.at, config.mode === 'vad');
    } else {
      if (!this.#down) return;
      this.#down = false;
      if (config.mode === 'hold') this.#dispatch('stop', event.at);
    }
  }

  #dispatch(action: 'start' | 'stop' | 'toggle', at: number, vad = false): void {
    this.#actions = this.#actions
      .then(() => this.#host.dispatch(action, { source: 'hotkey', at, ...(vad ? { vad } : {}) }))
      .catch((err: unknown) => this.#log.error(`hotkey ${action}: ${KotoError.is(err) ? err.toLine() : String(err)}`));
  }

  /** The backend died after it started: a held key counts as released, then it is opened again. */
  #lost(config: HotkeyConfig, err: Error): void {
    if (this.#config !== config || this.#closed) return;
    this.#grab = undefined;
    if (this.#down && config.mode === 'hold') {
      this.#down = false;
      this.#dispatch('stop', performance.timeOrigin + performance.now());
    }
    this.#down = false;
    this.#failed(config, err);
    this.#reopen = setTimeout(() => {
      this.#config = undefined;
      void this.configure(config);
    }, REOPEN_MS);
    this.#reopen.unref();
  }

  #failed(config: HotkeyConfig, err: unknown, backend?: string): void {
    const error = KotoError.is(err) ? err : kotoError('KOTO_ERR_INTERNAL', { detail: String(err) });
    this.#log.error(`hotkey ${config.keys ?? ''} is not active: ${error.toLine()}`);
    this.#host.report('hotkey', {
      keys: config.keys,
      mode: config.mode,
      backend: backend ?? config.backend,
      active: false,
      error: error.message,
      code: error.code,
      fix: error.fix,
      summary: `hotkey ${config.keys} not active: ${error.message} (${error.code})`,
    });
  }

  async #release(): Promise<void> {
    const grab = this.#grab;
    this.#grab = undefined;
    if (this.#down && this.#config?.mode === 'hold') this.#dispatch('stop', performance.timeOrigin + performance.now());
    this.#down = false;
    await grab?.close().catch(() => undefined);
  }
}

/** Backends load on use: a daemon without a hotkey never loads the X11 client. */
async function loadBackend(name: 'x11' | 'evdev'): Promise<OpenBackend> {
  if (name === 'x11') return (await import('./x11.ts')).openX11;
  return (await import('./evdev.ts')).openEvdev;
}
