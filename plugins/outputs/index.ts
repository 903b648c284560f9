import { definePlugin } from 'koto-voice';
import { pressAfter } from './after.ts';
import { ClipboardRestores, clipboardOptions, writeClipboard } from './clipboard.ts';
import { appendToFile, fileOptions } from './file.ts';
import { pasteOptions, pasteText } from './paste.ts';
import { stdoutOptions, writeStdout } from './stdout.ts';
import { typeOptions, typeOutput } from './type.ts';

/**
 * The built-in outputs: where finished text goes. Each is selected by name in `output`.
 * `paste` (the daemon's default) and `type` put the text into the focused window; when they
 * cannot, they fall back to the clipboard, then to a notification. The text is always in history.
 */
export default definePlugin({
  name: 'outputs',
  outputs: { stdout: stdoutOptions, file: fileOptions, clipboard: clipboardOptions, paste: pasteOptions, type: typeOptions },
  apply(api) {
    // Restores of the clipboard still due when the kernel closes (a one-shot `koto run` closes it
    // right after the outputs) are waited for, so they happen before the process exits.
    const restores = new ClipboardRestores();
    api.hooks.close.tapPromise('outputs', () => restores.settle());
    api.hooks.output.for('stdout').tapPromise('outputs', (req) => writeStdout(req));
    api.hooks.output.for('file').tapPromise('outputs', (req) => appendToFile(req, api.config().resolved.dir));
    api.hooks.output.for('clipboard').tapPromise('outputs', (req) => writeClipboard(req, api.log, restores));
    api.hooks.output.for('paste').tapPromise('outputs', async (req) => {
      if (await pasteText(req, api.log, restores, (signal) => api.focusedWindow(signal))) await pressAfter(req, api.log, 'paste');
    });
    api.hooks.output.for('type').tapPromise('outputs', async (req) => {
      if (await typeOutput(req, api.log)) await pressAfter(req, api.log, 'type');
    });
  },
});
