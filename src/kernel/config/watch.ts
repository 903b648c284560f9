import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

export interface WatchOptions {
  /** Quiet period after the last file event before reloading (editors write in bursts). */
  debounceMs?: number | undefined;
}

/**
 * Watches the config file and every file it references. It watches their *directories*, not
 * the files: editors save atomically (write a temp file, rename it over the original) or delete
 * and recreate, and a watch on the old inode would go deaf after the first save.
 */
export class ConfigWatcher {
  readonly #onChange: () => Promise<void>;
  readonly #debounceMs: number;
  #watcher: FSWatcher | undefined;
  #files = new Set<string>();
  #dirs = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(onChange: () => Promise<void>, options: WatchOptions = {}) {
    this.#onChange = onChange;
    this.#debounceMs = options.debounceMs ?? 150;
  }

  /** Sets the files to watch (call again after each reload: references may have changed). */
  async setFiles(files: readonly string[]): Promise<void> {
    if (this.#closed) return;
    this.#files = new Set(files.map((f) => path.resolve(f)));
    const dirs = new Set([...this.#files].map((f) => path.dirname(f)));
    if (!this.#watcher) {
      this.#watcher = watch([...dirs], { ignoreInitial: true, depth: 0, awaitWriteFinish: false });
      this.#watcher.on('all', (_event, changed) => this.#event(changed));
      await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()));
    } else {
      const added = [...dirs].filter((d) => !this.#dirs.has(d));
      const removed = [...this.#dirs].filter((d) => !dirs.has(d));
      if (added.length) this.#watcher.add(added);
      if (removed.length) this.#watcher.unwatch(removed);
    }
    this.#dirs = dirs;
  }

  get files(): readonly string[] {
    return [...this.#files];
  }

  #event(changed: string): void {
    if (this.#closed || !this.#files.has(path.resolve(changed))) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#fire(), this.#debounceMs);
  }

  // One reload at a time; events during a reload schedule exactly one more, so the last edit wins.
  #fire(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#onChange()
      .catch(() => undefined)
      .finally(() => {
        this.#running = undefined;
        if (this.#again && !this.#closed) {
          this.#again = false;
          this.#fire();
        }
      });
  }

  /** Resolves when no reload is pending or running (tests and shutdown use it). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#watcher?.close();
    await this.idle();
  }
}
