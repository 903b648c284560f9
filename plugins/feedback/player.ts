/**
 * Sound cues: which file each cue plays, the player found on PATH, one player process per cue
 * kind. `play` is called from the synchronous `recording` hook and returns at once; the spawn
 * follows a microtask later, once the (memoised) player and tone files are known.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { KotoConfig, PluginApi } from 'koto-voice';
import { findOnPath, ProcessSlot, reportOnce } from './process.ts';
import { CUE_KINDS, writeTones, type CueKind } from './tones.ts';

/** In order of preference: PulseAudio / PipeWire (they mix with other sounds), ALSA, macOS. */
export const PLAYERS: readonly { readonly name: string; readonly args: readonly string[] }[] = [
  { name: 'paplay', args: [] },
  { name: 'pw-play', args: [] },
  { name: 'aplay', args: ['-q'] },
  { name: 'afplay', args: [] },
];

/** The value of `feedback.sounds.<kind>` that names the built-in tone in the object form. */
export const BUILTIN = 'builtin';

/** A cue longer than this is stopped: a cue, not a song (and a stuck player must not hold the slot). */
const MAX_CUE_MS = 10_000;

export type CueSource = { readonly builtin: true } | { readonly file: string };

/**
 * What a cue plays under this config: `true` → every built-in tone; the object form → only the
 * cues it lists, each a file relative to the config's folder (or `builtin`); `false` → nothing.
 */
export function cueSource(sounds: KotoConfig['feedback']['sounds'], kind: CueKind, configDir: string): CueSource | undefined {
  if (sounds === false) return undefined;
  if (sounds === true) return { builtin: true };
  const value = sounds[kind]?.trim();
  if (!value) return undefined;
  if (value === BUILTIN) return { builtin: true };
  return { file: path.resolve(configDir, value) };
}

interface Player {
  readonly file: string;
  readonly args: readonly string[];
}

export class Sounds {
  readonly #api: PluginApi;
  #player: Promise<Player | undefined> | undefined;
  #tones: Promise<Readonly<Record<CueKind, string>> | undefined> | undefined;
  readonly #slots: Record<CueKind, ProcessSlot>;
  readonly #report: (key: string, message: string) => void;

  constructor(api: PluginApi) {
    this.#api = api;
    this.#report = reportOnce(api.log);
    const slot = (kind: CueKind) =>
      new ProcessSlot({
        maxMs: MAX_CUE_MS,
        onFailure: (message, reason) => {
          // Removed after it was found: look again at the next cue (another player may be there).
          if (reason === 'missing') this.#player = undefined;
          this.#report(`player:${reason}`, `the ${kind} cue did not play: ${message}`);
        },
      });
    this.#slots = { start: slot('start'), stop: slot('stop'), error: slot('error') };
  }

  /** The tone folder: private, under the data folder, regenerated if its files were changed. */
  get toneDir(): string {
    return path.join(this.#api.paths.dataDir, 'sounds');
  }

  /**
   * Ahead of the first cue (ready, a config change that turns sounds on): finds the player,
   * writes the built-in tones if a cue uses them, and says once if a configured file is missing.
   * Nothing at all when sounds are off. Never rejects.
   */
  async prepare(config: KotoConfig): Promise<void> {
    const sources = CUE_KINDS.map((kind) => [kind, cueSource(config.feedback.sounds, kind, config.resolved.dir)] as const);
    if (sources.every(([, source]) => !source)) return;
    const work: Promise<unknown>[] = [this.#resolvePlayer()];
    if (sources.some(([, source]) => source && 'builtin' in source)) work.push(this.#builtinTones());
    for (const [kind, source] of sources) if (source && 'file' in source) work.push(this.#checkFile(kind, source.file));
    await Promise.all(work);
  }

  /** Plays a cue if this config asks for it. Returns at once; never throws. */
  play(kind: CueKind, config: KotoConfig): void {
    const source = cueSource(config.feedback.sounds, kind, config.resolved.dir);
    if (!source) return;
    void this.#launch(kind, source).catch((err: unknown) => this.#api.log.debug(`the ${kind} cue did not play: ${String(err)}`));
  }

  async #launch(kind: CueKind, source: CueSource): Promise<void> {
    const player = await this.#resolvePlayer();
    if (!player) return;
    const file = 'file' in source ? source.file : (await this.#builtinTones())?.[kind];
    if (!file) return;
    const started = this.#slots[kind].start({ file: player.file, args: [...player.args, file], env: this.#api.env });
    if (!started) this.#api.log.debug(`the ${kind} cue was skipped: the previous one is still playing`);
  }

  #resolvePlayer(): Promise<Player | undefined> {
    this.#player ??= (async () => {
      for (const candidate of PLAYERS) {
        const file = await findOnPath([candidate.name], this.#api.env.PATH);
        if (file) {
          this.#api.log.debug(`sound cues play through ${file}`);
          return { file, args: candidate.args };
        }
      }
      this.#report(
        'no-player',
        `no sound player found on PATH (${PLAYERS.map((p) => p.name).join(', ')}): feedback.sounds plays nothing. Install one (e.g. apt install pulseaudio-utils) and restart Koto, or set feedback.sounds: false`,
      );
      return undefined;
    })();
    return this.#player;
  }

  #builtinTones(): Promise<Readonly<Record<CueKind, string>> | undefined> {
    this.#tones ??= writeTones(this.toneDir).catch((err: unknown) => {
      this.#report('tones', `the built-in sound cues could not be written to ${this.toneDir}: ${(err as Error).message}`);
      return undefined;
    });
    return this.#tones;
  }

  async #checkFile(kind: CueKind, file: string): Promise<void> {
    try {
      await access(file, constants.R_OK);
    } catch (err) {
      this.#report(
        `file:${file}`,
        `feedback.sounds.${kind}: ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); fix the path (relative to the config file) or remove the entry`,
      );
    }
  }
}
