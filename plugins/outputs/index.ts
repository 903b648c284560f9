import { definePlugin } from 'koto-voice';
import { clipboardOptions, writeClipboard } from './clipboard.ts';
import { appendToFile, fileOptions } from './file.ts';
import { stdoutOptions, writeStdout } from './stdout.ts';

/** The built-in outputs: where finished text goes. Each is selected by name in `output`. */
export default definePlugin({
  name: 'outputs',
  outputs: { stdout: stdoutOptions, file: fileOptions, clipboard: clipboardOptions },
  apply(api) {
    api.hooks.output.for('stdout').tapPromise('outputs', (req) => writeStdout(req));
    api.hooks.output.for('file').tapPromise('outputs', (req) => appendToFile(req, api.config().resolved.dir));
    api.hooks.output.for('clipboard').tapPromise('outputs', (req) => writeClipboard(req));
  },
});
