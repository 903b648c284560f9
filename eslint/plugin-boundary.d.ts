import type { Rule } from 'eslint';

/** The `koto/plugin-boundary` rule for a project rooted at `root` declaring these dependencies. */
export function pluginBoundary(root: string, dependencies: readonly string[]): Rule.RuleModule;
