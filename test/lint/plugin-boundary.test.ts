/**
 * The architecture rule the linter enforces (eslint/plugin-boundary.js): a plugin imports only
 * koto-voice and its public subpaths, node: built-ins, declared dependencies and its own folder.
 * Checked through ESLint itself on code placed (virtually) in plugins/, so the rule can fail.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { pluginBoundary } from '../../eslint/plugin-boundary.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({
  cwd: root,
  overrideConfigFile: true,
  overrideConfig: [
    {
      files: ['**/*.ts'],
      languageOptions: { parser: (await import('typescript-eslint')).parser },
      plugins: { koto: { rules: { 'plugin-boundary': pluginBoundary(root, ['undici', 'yaml', '@azure/identity']) } } },
      rules: { 'koto/plugin-boundary': 'error' },
    },
  ],
});

async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  return result!.messages.map((m) => m.message);
}

describe('koto/plugin-boundary', () => {
  it.each([
    ["import { kotoError } from 'koto-voice';"],
    ["import { startOpenAIServer } from 'koto-voice/testing';"],
    ["import { readFile } from 'node:fs/promises';"],
    ["import { request } from 'undici';"],
    ["import { DefaultAzureCredential } from '@azure/identity';"],
    ["import { parse } from 'yaml/util';"],
    ["import { helper } from './helper.ts';"],
    ["import { deeper } from '../acme/wire/deeper.ts';"],
    ["export * from './types.ts';"],
    ["const lazy = await import('./lazy.ts');"],
  ])('allowed in plugins/acme: %s', async (code) => {
    expect(await problems('plugins/acme/sub/../index.ts', code)).toEqual([]);
  });

  it.each([
    ["import { Kernel } from '../../src/kernel/kernel.ts';", '"../../src/kernel/kernel.ts" reaches outside plugins/acme'],
    ["import { paste } from '../outputs/paste.ts';", '"../outputs/paste.ts" reaches outside plugins/acme'],
    ["export { x } from '../other/x.ts';", '"../other/x.ts" reaches outside plugins/acme'],
    ["const m = await import('../../src/index.ts');", '"../../src/index.ts" reaches outside plugins/acme'],
    ["import leftPad from 'left-pad';", '"left-pad" is not a declared dependency'],
    ["import { something } from '@scope/undeclared';", '"@scope/undeclared" is not a declared dependency'],
  ])('refused in plugins/acme: %s', async (code, says) => {
    const found = await problems('plugins/acme/index.ts', code);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(says);
    expect(found[0]).toContain('plugins import only koto-voice');
  });

  it('files outside plugins/ are not its business', async () => {
    expect(await problems('src/kernel/anything.ts', "import { x } from '../../plugins/outputs/paste.ts';")).toEqual([]);
  });
});
