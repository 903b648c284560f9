import type { Logger } from 'koto-voice';
import { isMicError } from './errors.ts';
import type { Microphone, Recording } from './microphone.ts';

/** After a failed open, the next attempt waits this long (a missing device must not spin). */
const RETRY_MS = 5000;

export interface StandbySettings {
  readonly device: string;
  readonly preRollMs: number;
}

export interface StandbyStatus {
  readonly open: boolean;
  readonly device: string;
  readonly preRollMs: number;
  readonly error?: string | undefined;
  readonly summary: string;
}

/**
 * The microphone kept open between recordings while the daemon runs (`audio.preRollMs` > 0), so
 * a recording starts with the audio from before the key press and the first word is never cut.
 * One device at a time: taken by a recording, opened again once that recording released it.
 */
export class Standby {
  readonly #open: (settings: StandbySettings) => Promise<Microphone>;
  readonly #log: Pick<Logger, 'debug' | 'info' | 'warn'>;
  readonly #report: (status: StandbyStatus | undefined) => void;
  #settings: StandbySettings | undefined;
  #mic: Promise<Microphone | undefined> | undefined;
  #inUse = false;
  #closed = false;
  #error: string | undefined;
  #retry: NodeJS.Timeout | undefined;

  constructor(
    open: (settings: StandbySettings) => Promise<Microphone>,
    log: Pick<Logger, 'debug' | 'info' | 'warn'>,
    report: (status: StandbyStatus | undefined) => void,
  ) {
    this.#open = open;
    this.#log = log;
    this.#report = report;
  }

  /** Applies the current config: opens, reopens (another device or length) or closes. */
  configure(settings: StandbySettings | undefined): void {
    if (this.#closed) return;
    const same = settings && this.#settings && settings.device === this.#settings.device && settings.preRollMs === this.#settings.preRollMs;
    if (same || (!settings && !this.#settings)) return;
    this.#settings = settings;
    // Not awaited (settings apply at once); a microphone that failed to open has nothing to close.
    this.#drop().catch((err: unknown) => this.#log.debug(`closing the kept-open microphone: ${String(err)}`));
    if (settings) {
      this.#log.info(`keeping the microphone open for a ${settings.preRollMs} ms pre-roll (audio.preRollMs)`);
      if (!this.#inUse) this.#arm();
    }
    this.#publish();
  }

  /**
   * The kept-open microphone for a recording from `device`, if one is ready (else the caller
   * opens the device itself). It is re-armed once the recording releases the device.
   */
  async take(device: string): Promise<Microphone | undefined> {
    if (!this.#mic || this.#settings?.device !== device) return undefined;
    const pending = this.#mic;
    this.#mic = undefined;
    const mic = await pending;
    if (!mic || mic.state !== 'armed' || mic.error !== undefined) {
      await mic?.close();
      this.#arm();
      return undefined;
    }
    this.#inUse = true;
    this.#publish();
    return mic;
  }

  /** The recording that took the microphone ended: open it again for the next one. */
  released(recording: Recording): void {
    void recording.released.then(() => {
      this.#inUse = false;
      if (!this.#closed && this.#settings && !this.#mic) this.#arm();
      this.#publish();
    });
  }

  /** The taken microphone could not start a recording: open a fresh one for the next. */
  failedStart(): void {
    this.#inUse = false;
    if (!this.#closed && this.#settings && !this.#mic) this.#arm();
    this.#publish();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#settings = undefined;
    await this.#drop();
    this.#report(undefined);
  }

  #arm(): void {
    const settings = this.#settings;
    if (!settings || this.#closed) return;
    clearTimeout(this.#retry);
    const mic = this.#open(settings).then(
      (opened) => {
        this.#error = undefined;
        this.#publish();
        return opened;
      },
      (err: unknown) => {
        const message = isMicError(err) ? err.message : String(err);
        if (message !== this.#error)
          this.#log.warn(`the microphone cannot be kept open for pre-roll: ${message}; trying again every ${RETRY_MS / 1000} s`);
        this.#error = message;
        this.#publish();
        this.#retry = setTimeout(() => {
          if (this.#mic === mic) {
            this.#mic = undefined;
            this.#arm();
          }
        }, RETRY_MS);
        this.#retry.unref();
        return undefined;
      },
    );
    this.#mic = mic;
  }

  async #drop(): Promise<void> {
    clearTimeout(this.#retry);
    const pending = this.#mic;
    this.#mic = undefined;
    this.#error = undefined;
    await (await pending)?.close();
  }

  #publish(): void {
    const settings = this.#settings;
    if (!settings) return this.#report(undefined);
    const open = this.#inUse || (this.#mic !== undefined && this.#error === undefined);
    this.#report({
      open,
      device: settings.device,
      preRollMs: settings.preRollMs,
      ...(this.#error ? { error: this.#error } : {}),
      summary: this.#error ? `pre-roll microphone not open (${this.#error})` : `microphone kept open (pre-roll ${settings.preRollMs} ms)`,
    });
  }
}
