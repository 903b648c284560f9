/**
 * Every TypeScript sample in docs/plugins.md type-checks against the real public API (#22): a
 * plugin author copies them, so a renamed hook or a changed signature must break this test, not
 * the author's build. Each sample is compiled on its own, with a prelude declaring the context
 * the guide's prose gives it (`api`, `request`, `NAME`, …); blocks that describe a type's shape
 * (`interface …` listings of what the API hands you) are documentation, not code, and skipped.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const guide = readFileSync(path.join(root, 'docs', 'plugins.md'), 'utf8');

/** Fenced ```ts blocks with the line they start on. */
const blocks = [...guide.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => ({
  code: m[1]!,
  line: guide.slice(0, m.index).split('\n').length,
}));
const shapes = (code: string) => /^(\s*\/\/.*\n)*\s*interface /.test(code);

/** What the prose around the samples gives them; imports a sample makes itself are not repeated. */
function prelude(code: string): string {
  const names = ['definePlugin', 'kotoError', 'KotoError', 'z', 'STAGE'].filter(
    (n) => !new RegExp(`import \\{[^}]*\\b${n}\\b[^}]*\\} from 'koto-voice'`).test(code),
  );
  return [
    names.length ? `import { ${names.join(', ')} } from 'koto-voice';` : '',
    "import type { PluginApi, AsrRequest, AudioFrame, AudioDevice } from 'koto-voice';",
    'declare const api: PluginApi;',
    'declare const request: AsrRequest;',
    'declare const key: string;',
    /\bconst NAME\b/.test(code) ? '' : 'declare const NAME: string;',
    'declare function fix(text: string): string;',
    // The audio-source sample's device layer (whatever library the author wraps).
    'declare function openDevice(device: string | undefined, options: { signal: AbortSignal }): Promise<{ frames(): AsyncIterable<AudioFrame>; deviceName: string; wavPath: string; stop(): Promise<void> }>;',
    'declare function listDevices(): Promise<AudioDevice[]>;',
    // The focusedWindow sample's compositor client.
    'declare function askNiri(env: unknown, signal: AbortSignal): Promise<{ app_id: string; title: string; pid: number; id: number } | undefined>;',
    // Keep the prelude's names used whatever the sample uses.
    `export type _Prelude = [${['typeof api', 'typeof request', 'typeof key', 'typeof fix', ...names.filter((n) => n !== 'KotoError').map((n) => `typeof ${n}`)].join(', ')}];`,
    '',
  ].join('\n');
}

const work = mkdtempSync(path.join(os.tmpdir(), 'koto-doc-samples-'));
// ES modules, as the guide's packages are ("type": "module").
writeFileSync(path.join(work, 'package.json'), '{ "type": "module" }\n');
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('docs/plugins.md samples', () => {
  it('has samples to check', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
  });

  it('every code sample type-checks against koto-voice (strict)', async () => {
    const files: string[] = [];
    for (const [i, block] of blocks.entries()) {
      if (shapes(block.code)) continue;
      // Each sample in its own folder, with the files it imports next to it (an author's own).
      const dir = path.join(work, `sample-${i + 1}-line-${block.line}`, 'test');
      mkdirSync(path.join(dir, '..', 'src'), { recursive: true });
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        path.join(dir, '..', 'src', 'index.ts'),
        "import { definePlugin } from 'koto-voice';\nexport default definePlugin({ name: 'mine', capabilities: ['asr'], apply() {} });\n",
      );
      writeFileSync(
        path.join(dir, 'server.ts'),
        "import type { ConformanceServer } from 'koto-voice/testing';\nexport declare function startMyServer(options: { apiKey: string }): Promise<ConformanceServer>;\n",
      );
      const file = path.join(dir, 'sample.ts');
      // Top-level await and `export default` make every sample a module.
      writeFileSync(file, `${prelude(block.code)}${block.code}\nexport {};\n`);
      files.push(file);
    }
    const paths = {
      'koto-voice': [path.join(root, 'src/index.ts')],
      'koto-voice/testing': [path.join(root, 'src/testing/index.ts')],
      'koto-voice/openai-wire': [path.join(root, 'plugins/openai-compatible/wire.ts')],
      'koto-voice/x11': [path.join(root, 'src/x11/index.ts')],
    };
    writeFileSync(
      path.join(work, 'tsconfig.json'),
      JSON.stringify({
        extends: path.join(root, 'tsconfig.json'),
        compilerOptions: { noEmit: true, rootDir: '/', paths, typeRoots: [path.join(root, 'node_modules/@types')], noUnusedLocals: false },
        include: [],
        files,
      }),
    );
    const result = await exec(path.join(root, 'node_modules/.bin/tsc'), ['-p', path.join(work, 'tsconfig.json')], {
      cwd: root,
      encoding: 'utf8',
    }).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }));
    // Errors name the sample's folder: which block, at which line of the guide.
    const errors = `${result.stdout}${result.stderr}`
      .split('\n')
      .filter((l) => l.includes('sample-') && /error TS/.test(l))
      .map((l) => l.slice(l.indexOf('sample-')));
    expect(errors).toEqual([]);
  });
});
