/**
 * Imported first by the package entry (src/index.ts): ES modules evaluate their imports in order,
 * so this runs before undici 8 (which fails on Node < 22.19 with "Cannot read properties of
 * undefined (reading 'bind')") and tells an application author what is wrong instead.
 */
import { kotoError } from './errors.ts';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  throw kotoError('KOTO_ERR_NODE_VERSION', { version: process.versions.node });
}
