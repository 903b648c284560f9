import type { Logger } from 'koto-voice';
import { LibraryDecoder } from './decoder.ts';

/** Loaded models by their arguments: one per kernel, reused by every session. */
export interface DecoderPool {
  /** `library` is the provider's option (undefined: the default library), as chooseEngine loaded it. */
  decoderFor(library: string | undefined, args: readonly string[]): Promise<LibraryDecoder>;
  /** Closes every loaded model (at kernel close). */
  close(): Promise<void>;
}

export function decoderPool(log: Logger): DecoderPool {
  const decoders = new Map<string, Promise<LibraryDecoder>>();
  /** `library` is the provider's option (undefined: the default library), as chooseEngine loaded it. */
  const decoderFor = (library: string | undefined, args: readonly string[]): Promise<LibraryDecoder> => {
    const key = JSON.stringify([library ?? '', args]);
    let pending = decoders.get(key);
    if (!pending) {
      const started = performance.now();
      pending = LibraryDecoder.create(library, args);
      pending.then(
        () => log.debug(`pocketsphinx model loaded in ${Math.round(performance.now() - started)} ms`),
        () => decoders.delete(key),
      );
      decoders.set(key, pending);
    }
    return pending;
  };

  const close = async () => {
    const pending = [...decoders.values()];
    decoders.clear();
    for (const decoder of pending)
      await decoder.then(
        (d) => d.close(),
        () => undefined,
      );
  };
  return { decoderFor, close };
}
