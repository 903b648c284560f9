// Loaded with NODE_OPTIONS=--import=…: appends the URL of every module the process loads to the
// file named by KOTO_TRACE_MODULES, so a test can assert what a command did NOT load.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.KOTO_TRACE_MODULES;
if (out) {
  registerHooks({
    load(url, context, nextLoad) {
      appendFileSync(out, `${url}\n`);
      return nextLoad(url, context);
    },
  });
}
