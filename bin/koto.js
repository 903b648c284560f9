#!/usr/bin/env node
// Plain JavaScript that any Node can parse: it must be able to say "too old" before loading
// code (undici 8) that would fail with a stack trace on Node < 22.19.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `koto: Koto needs Node >= 22.19, this is ${process.versions.node}. Fix: install Node 22.19 or newer, ` +
      'or run it through npx / npm run inside the project, which use the Node it pins. (KOTO_ERR_NODE_VERSION)\n',
  );
  process.exit(3);
}
// `koto --version` is what scripts and health checks call most: answer it without loading the CLI.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  const { readFileSync } = await import('node:fs');
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
  process.exit(0);
}
// Control commands bound to a key (start/stop/toggle/cancel/status) go through a small client
// that loads nothing heavy; it answers `undefined` for anything it does not handle.
if (['start', 'stop', 'toggle', 'cancel', 'status'].includes(args[0])) {
  const fast = await import('../dist/src/cli/fast.js').catch(() => undefined);
  const code = fast && (await fast.fastMain(args));
  if (code !== undefined) process.exit(code);
}
import('../dist/src/cli/main.js').then(
  (cli) => cli.main(process.argv.slice(2)),
  (err) => {
    const missing = err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist');
    process.stderr.write(
      missing
        ? 'koto: Koto is not built. Fix: run `npm install` (or `npm run build`) in the project. (KOTO_ERR_INTERNAL)\n'
        : `koto: internal error: ${err && err.message}. Fix: run with --debug and report it. (KOTO_ERR_INTERNAL)\n`,
    );
    process.exit(1);
  },
);
