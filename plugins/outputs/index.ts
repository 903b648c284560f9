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
    const v1 = 'v1' as const;
    api.provide.output('stdout', { specificationVersion: v1, deliver: (req) => writeStdout(req) });
    api.provide.output('file', { specificationVersion: v1, deliver: (req) => appendToFile(req, api.config().resolved.dir) });
    api.provide.output('clipboard', { specificationVersion: v1, deliver: (req) => writeClipboard(req, api.log, restores) });
    api.provide.output('paste', {
      specificationVersion: v1,
      async deliver(req) {
        if (await pasteText(req, api.log, restores, (signal) => api.focusedWindow(signal))) await pressAfter(req, api.log, 'paste');
      },
    });
    api.provide.output('type', {
      specificationVersion: v1,
      async deliver(req) {
        if (await typeOutput(req, api.log)) await pressAfter(req, api.log, 'type');
      },
    });
  },
});
