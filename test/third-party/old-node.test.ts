/**
 * An application or plugin author importing koto-voice on a Node that is too old gets the
 * catalogue's KOTO_ERR_NODE_VERSION, not "Cannot read properties of undefined (reading 'bind')"
 * from deep inside undici. The process is told it is Node 20 by a preload (no second Node needed).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const preload = fileURLToPath(new URL('../support/fake-node-20.mjs', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

describe('importing koto-voice on Node 20', () => {
  it.each(['koto-voice', 'koto-voice/testing'])(
    '%s: KOTO_ERR_NODE_VERSION with the fix, before any dependency loads',
    async (specifier) => {
      const script = `import(${JSON.stringify(specifier)}).then(() => console.log('loaded'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message, fix: e.fix })))`;
      // Run from the package folder so the name resolves through its own exports (the built dist).
      const { stdout } = await exec(process.execPath, ['--import', preload, '--input-type=module', '-e', script], {
        cwd: root,
        encoding: 'utf8',
      });
      const answer = JSON.parse(stdout) as { code: string; message: string; fix: string };
      expect(answer).toMatchObject({ code: 'KOTO_ERR_NODE_VERSION', message: 'Koto needs Node >= 22.19, this is 20.20.2' });
      expect(answer.fix).toContain('install Node 22.19 or newer');
    },
  );
});
