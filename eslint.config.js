// Lint: typescript-eslint (with the type-aware rules that catch real bugs: floating and misused
// promises) and Koto's architecture rule, `koto/plugin-boundary`. Run by the README test command.
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import { pluginBoundary } from './eslint/plugin-boundary.js';

const root = path.dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const declared = [
  ...Object.keys(pkg.dependencies ?? {}),
  ...Object.keys(pkg.optionalDependencies ?? {}),
  ...Object.keys(pkg.peerDependencies ?? {}),
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'examples/*/dist/**', 'examples/*/node_modules/**', 'docs/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['scripts/*.ts'] }, tsconfigRootDir: root } },
    plugins: { koto: { rules: { 'plugin-boundary': pluginBoundary(root, declared) } } },
    rules: {
      'koto/plugin-boundary': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error',
      // Declaration merging and `declare module` files need these.
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/no-empty-object-type': 'off',
      // A variable assigned after a closure that reads it later is not a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Matching control characters is the point where it happens (terminal escapes, WAV headers).
      'no-control-regex': 'off',
    },
  },
  {
    rules: {
      // Unused names prefixed with _ are deliberate (a destructured field left out, a required parameter).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: globals.node },
  },
  {
    // The control panel's page runs in the browser.
    files: ['ui/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
);
