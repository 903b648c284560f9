/**
 * node:sqlite, loaded when a database is opened rather than when the module is linked: a static
 * import fails to link on a Node without it, before the package entry can say "Node too old"
 * (src/kernel/node-check.ts).
 */
import type * as Sqlite from 'node:sqlite';

export function sqlite(): typeof Sqlite {
  return process.getBuiltinModule('node:sqlite') as typeof Sqlite;
}
