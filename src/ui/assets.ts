import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The page's files: the package's own `ui/` folder and three vendored ES modules (Preact, its
 * hooks, htm) read from node_modules. Everything is read once and served from memory: no
 * path from a request ever reaches the file system, and the panel works offline.
 */
export interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The package root: the folder of koto-voice's package.json, from src/ui or dist/src/ui. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'koto-voice') return dir;
    } catch {
      // not here
    }
    dir = path.dirname(dir);
  }
  throw new Error('the koto-voice package folder was not found (its ui/ assets are needed for the control panel)');
}

// The page's own modules; kept as an explicit list so nothing else in the folder is ever served.
const PAGE_FILES = [
  'index.html',
  'login.js',
  'app.js',
  'api.js',
  'live.js',
  'history.js',
  'settings.js',
  'devices.js',
  'style.css',
  'icon.svg',
];

let cache: Map<string, Asset> | undefined;

export function loadAssets(): Map<string, Asset> {
  if (cache) return cache;
  const root = packageRoot();
  const assets = new Map<string, Asset>();
  for (const file of PAGE_FILES) {
    const body = readFileSync(path.join(root, 'ui', file));
    assets.set(file === 'index.html' ? '/' : `/${file}`, { body, type: TYPES[path.extname(file)] ?? 'application/octet-stream' });
  }
  const require = createRequire(import.meta.url);
  const vendor = (name: string, file: string) => {
    // The bare specifier inside hooks.mjs is rewritten to our URL (no import map: it would be an inline script).
    const text = readFileSync(file, 'utf8')
      .replace(/from\s*"preact"/g, 'from"/vendor/preact.mjs"')
      .replace(/\n\/\/# sourceMappingURL=.*$/m, '');
    assets.set(`/vendor/${name}`, { body: Buffer.from(text), type: TYPES['.mjs']! });
  };
  vendor('preact.mjs', require.resolve('preact'));
  vendor('hooks.mjs', require.resolve('preact/hooks'));
  vendor('htm.mjs', path.join(path.dirname(require.resolve('htm')), 'htm.mjs'));
  cache = assets;
  return assets;
}
