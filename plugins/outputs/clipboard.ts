import { z } from 'zod';
import { kotoError, describeError, type OutputRequest } from 'koto-voice';

export const clipboardOptions = z.strictObject({});

export async function writeClipboard(req: OutputRequest): Promise<void> {
  // Loaded on first use: clipboardy spawns platform tools and is not needed by most runs.
  const { default: clipboard } = await import('clipboardy');
  try {
    await clipboard.write(req.text);
  } catch (err) {
    throw kotoError('KOTO_ERR_OUTPUT', {
      output: 'clipboard',
      detail: `${describeError(err)} (on Linux the clipboard needs a display and xsel, xclip or wl-clipboard)`,
    });
  }
}
