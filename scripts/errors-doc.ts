// Regenerates the table in docs/errors.md from the catalogue: `npx node scripts/errors-doc.ts`.
// test/errors-catalogue.test.ts fails when the two drift apart.
import { readFileSync, writeFileSync } from 'node:fs';
import { ERRORS } from '../src/kernel/errors.ts';

const file = new URL('../docs/errors.md', import.meta.url);
const doc = readFileSync(file, 'utf8');
const rows = Object.entries(ERRORS).map(
  ([code, spec]) => `| \`${code}\` | ${spec.exit} | ${spec.message.replace(/\|/g, '\\|')} | ${spec.fix.replace(/\|/g, '\\|')} |`,
);
const table = ['| code | exit | message | fix |', '|---|---|---|---|', ...rows].join('\n');
const next = doc.replace(/<!-- table:start -->[\s\S]*<!-- table:end -->/, `<!-- table:start -->\n${table}\n<!-- table:end -->`);
writeFileSync(file, next);
