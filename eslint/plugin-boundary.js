// Koto's architecture rule for ESLint (used by eslint.config.js, tested by test/lint).
import path from 'node:path';

/** The package a bare specifier names: `undici`, `@azure/identity`, `yaml` from `yaml/util`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/**
 * A plugin uses Koto only as a third-party plugin would: `koto-voice` and its public subpaths,
 * Node's built-ins, the packages the project declares, and files of its own folder. Anything else
 * (the kernel's sources, another plugin's files, an undeclared package) is an error.
 */
export function pluginBoundary(root, dependencies) {
  const declared = new Set(dependencies);
  return {
    meta: {
      type: 'problem',
      messages: {
        outside:
          '{{what}}: plugins import only koto-voice (and its public subpaths), node: built-ins, declared dependencies and their own folder',
      },
    },
    create(context) {
      const file = context.filename;
      const rel = path.relative(path.join(root, 'plugins'), file);
      const own = rel.split(path.sep)[0];
      if (!own || rel.startsWith('..')) return {};
      const home = path.join(root, 'plugins', own);
      const check = (node, specifier) => {
        if (typeof specifier !== 'string') return;
        let what;
        if (specifier.startsWith('.')) {
          const target = path.resolve(path.dirname(file), specifier);
          if (target !== home && !target.startsWith(home + path.sep)) what = `"${specifier}" reaches outside plugins/${own}`;
        } else if (specifier.startsWith('node:')) {
          return;
        } else if (specifier === 'koto-voice' || specifier.startsWith('koto-voice/')) {
          return;
        } else if (!declared.has(packageOf(specifier))) {
          what = `"${specifier}" is not a declared dependency`;
        }
        if (what) context.report({ node, messageId: 'outside', data: { what } });
      };
      return {
        ImportDeclaration: (node) => check(node.source, node.source.value),
        ExportNamedDeclaration: (node) => node.source && check(node.source, node.source.value),
        ExportAllDeclaration: (node) => check(node.source, node.source.value),
        ImportExpression: (node) => node.source.type === 'Literal' && check(node.source, node.source.value),
      };
    },
  };
}
