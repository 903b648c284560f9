import cliProgress from 'cli-progress';
import pLimit from 'p-limit';

/**
 * Runs one job per input with bounded concurrency (they share the one HTTP/2 connection),
 * with a progress bar on stderr when it is a terminal and there is more than one input.
 */
export async function runBatch<T>(
  inputs: readonly string[],
  concurrency: number,
  job: (input: string, index: number) => Promise<T>,
): Promise<T[]> {
  const limit = pLimit(Math.max(1, concurrency));
  const showBar = inputs.length > 1 && process.stderr.isTTY === true;
  const bar = showBar
    ? new cliProgress.SingleBar(
        { stream: process.stderr, format: 'koto {bar} {value}/{total} files | {eta}s left', hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(inputs.length, 0);
  try {
    return await Promise.all(
      inputs.map((input, index) =>
        limit(async () => {
          try {
            return await job(input, index);
          } finally {
            bar?.increment();
          }
        }),
      ),
    );
  } finally {
    bar?.stop();
  }
}
