import type { Kernel } from '../kernel/kernel.ts';
import type { LogLevel } from '../kernel/logger.ts';
import type { Reporter } from './report.ts';

export interface GlobalOptions {
  config?: string | undefined;
  debug?: boolean | undefined;
  /** false with --no-daemon: never hand work to a running daemon. */
  daemon?: boolean | undefined;
  quiet?: boolean | undefined;
}

/** What every command gets: the parsed global options and a lazily started kernel. */
export class CliContext implements Reporter {
  readonly options: GlobalOptions;
  #kernel: Kernel | undefined;

  constructor(options: GlobalOptions) {
    this.options = options;
  }

  get debug(): boolean {
    return Boolean(this.options.debug);
  }

  scrub = (text: string): string => (this.#kernel ? this.#kernel.scrub(text) : text);

  /**
   * `everyBuiltin`: load every built-in plugin, not only those the config uses (`koto plugins`
   * and `koto doctor` list them all).
   */
  async kernel(options: { everyBuiltin?: boolean } = {}): Promise<Kernel> {
    if (!this.#kernel) {
      const logLevel: LogLevel = this.options.debug ? 'debug' : this.options.quiet ? 'error' : 'warn';
      // Loaded on first use: `koto --help` or `koto status` never pays for the kernel (undici, zod, plugins).
      const { createKernel } = await import('../kernel/kernel.ts');
      const builtins = options.everyBuiltin ? (await import('../kernel/plugin-loader.ts')).builtinPluginNames() : undefined;
      this.#kernel = await createKernel({ configPath: this.options.config, logLevel, builtins });
    }
    return this.#kernel;
  }

  /** Use a kernel created elsewhere (the daemon's) for scrubbing and shutdown. */
  adopt(kernel: Kernel): void {
    this.#kernel = kernel;
  }

  async close(): Promise<void> {
    await this.#kernel?.close();
  }
}
