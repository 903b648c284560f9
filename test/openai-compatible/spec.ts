/**
 * A small checker of request bodies against the OpenAI OpenAPI spec (the subset vendored in
 * test/fixtures/openai-openapi.subset.yaml by scripts/vendor-openai-spec.ts): resolves
 * `$ref`, merges `allOf`, accepts a value when some `anyOf`/`oneOf` branch accepts it, and checks
 * `type` (with `nullable`), `enum`, `required`, numeric and length bounds, and — stricter than the
 * spec's default — rejects object keys the schema does not declare, so a misspelled parameter
 * (`max_token`) fails the test instead of being ignored upstream.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

type Schema = Record<string, unknown>;

const SPEC_PATH = fileURLToPath(new URL('../fixtures/openai-openapi.subset.yaml', import.meta.url));

let schemas: Record<string, Schema> | undefined;

function allSchemas(): Record<string, Schema> {
  if (!schemas) {
    const doc = parse(readFileSync(SPEC_PATH, 'utf8'), { maxAliasCount: -1 }) as { components: { schemas: Record<string, Schema> } };
    schemas = doc.components.schemas;
  }
  return schemas;
}

export function schemaNamed(name: string): Schema {
  const schema = allSchemas()[name];
  if (!schema)
    throw new Error(`the vendored spec subset has no schema ${name}: add it to ROOTS in scripts/vendor-openai-spec.ts and run it again`);
  return schema;
}

function deref(schema: Schema): Schema {
  let current = schema;
  for (let i = 0; i < 20 && typeof current.$ref === 'string'; i++) {
    const name = /^#\/components\/schemas\/(.+)$/.exec(current.$ref as string)?.[1];
    if (!name) throw new Error(`unsupported $ref ${String(current.$ref)}`);
    current = schemaNamed(name);
  }
  return current;
}

interface Merged {
  types: Set<string> | undefined;
  nullable: boolean;
  enum: unknown[] | undefined;
  properties: Record<string, Schema[]>;
  required: Set<string>;
  /** Whether keys outside `properties` are allowed. */
  open: boolean;
  items: Schema[];
  alternatives: Schema[][];
  bounds: Schema[];
}

/** Merges a schema and everything it pulls in through `$ref` and `allOf`. */
function merge(schema: Schema, into?: Merged): Merged {
  const out: Merged = into ?? {
    types: undefined,
    nullable: false,
    enum: undefined,
    properties: {},
    required: new Set(),
    open: true,
    items: [],
    alternatives: [],
    bounds: [],
  };
  const s = deref(schema);
  if (typeof s.type === 'string') {
    const next = new Set([s.type]);
    out.types = out.types ? new Set([...out.types].filter((t) => next.has(t))) : next;
  }
  if (s.nullable === true) out.nullable = true;
  if (Array.isArray(s.enum)) out.enum = s.enum;
  if (s.properties && typeof s.properties === 'object') {
    for (const [key, value] of Object.entries(s.properties as Record<string, Schema>)) (out.properties[key] ??= []).push(value);
    out.open = false;
  }
  if (s.additionalProperties !== undefined && s.additionalProperties !== false) out.open = true;
  if (Array.isArray(s.required)) for (const key of s.required as string[]) out.required.add(key);
  if (s.items && typeof s.items === 'object') out.items.push(s.items as Schema);
  for (const key of ['anyOf', 'oneOf'] as const) if (Array.isArray(s[key])) out.alternatives.push(s[key] as Schema[]);
  out.bounds.push(s);
  if (Array.isArray(s.allOf)) for (const part of s.allOf as Schema[]) merge(part, out);
  return out;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(actual: string, wanted: string): boolean {
  return actual === wanted || (wanted === 'number' && actual === 'integer');
}

/** Problems of `value` against `schema`, as `path: what` lines (empty when valid). */
export function validate(value: unknown, schema: Schema, path = '$'): string[] {
  const m = merge(schema);
  const errors: string[] = [];
  if (value === null && (m.nullable || (m.types?.has('null') ?? false))) return [];
  if (m.types && m.types.size > 0 && ![...m.types].some((t) => typeMatches(typeOf(value), t))) {
    return [`${path}: expected ${[...m.types].join('|')}${m.nullable ? '|null' : ''}, got ${typeOf(value)}`];
  }
  if (m.enum && !m.enum.includes(value)) errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(m.enum)}`);
  for (const b of m.bounds) {
    if (typeof value === 'number') {
      if (typeof b.minimum === 'number' && value < b.minimum) errors.push(`${path}: ${value} < minimum ${b.minimum}`);
      if (typeof b.maximum === 'number' && value > b.maximum) errors.push(`${path}: ${value} > maximum ${b.maximum}`);
    }
    if (typeof value === 'string') {
      if (typeof b.minLength === 'number' && value.length < b.minLength) errors.push(`${path}: shorter than ${b.minLength}`);
      if (typeof b.maxLength === 'number' && value.length > b.maxLength) errors.push(`${path}: longer than ${b.maxLength}`);
    }
    if (Array.isArray(value)) {
      if (typeof b.minItems === 'number' && value.length < b.minItems) errors.push(`${path}: fewer than ${b.minItems} items`);
      if (typeof b.maxItems === 'number' && value.length > b.maxItems) errors.push(`${path}: more than ${b.maxItems} items`);
    }
  }
  for (const alternatives of m.alternatives) {
    const results = alternatives.map((alt) => validate(value, alt, path));
    if (!results.some((r) => r.length === 0)) {
      errors.push(`${path}: matches none of ${alternatives.length} alternatives (${results.map((r) => r[0]).join(' / ')})`);
    }
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      for (const items of m.items) errors.push(...validate(item, items, `${path}[${i}]`));
    });
  }
  if (typeOf(value) === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of m.required) if (!(key in record)) errors.push(`${path}: missing required ${key}`);
    const declared = Object.keys(m.properties).length > 0;
    for (const [key, item] of Object.entries(record)) {
      const props = m.properties[key];
      if (props) for (const p of props) errors.push(...validate(item, p, `${path}.${key}`));
      else if (declared && !m.open) errors.push(`${path}: unknown property ${key}`);
    }
  }
  return errors;
}

/** The JSON types a multipart text field may stand for, from its property schema. */
function fieldTypes(schema: Schema): Set<string> {
  const m = merge(schema);
  const types = new Set(m.types ?? []);
  for (const alternatives of m.alternatives) for (const alt of alternatives) for (const t of fieldTypes(alt)) types.add(t);
  return types;
}

/**
 * Turns recorded multipart fields into the JSON object the spec describes: `name[]` fields
 * become arrays, text is coerced to the property's number/boolean type, files become strings
 * (`format: binary`).
 */
export function formToObject(
  form: { fields: Record<string, string[]>; files: Record<string, unknown> },
  schemaName: string,
): Record<string, unknown> {
  const props = merge(schemaNamed(schemaName)).properties;
  const out: Record<string, unknown> = {};
  for (const [rawName, values] of Object.entries(form.fields)) {
    const isArray = rawName.endsWith('[]');
    const name = isArray ? rawName.slice(0, -2) : rawName;
    const types = props[name] ? fieldTypes(props[name][0]!) : new Set<string>(['string']);
    const coerce = (text: string): unknown => {
      if (types.has('string') || types.has('array')) return text;
      if (types.has('number') || types.has('integer')) return Number(text);
      if (types.has('boolean')) return text === 'true' ? true : text === 'false' ? false : text;
      return text;
    };
    out[name] = isArray ? values.map(coerce) : coerce(values[0] ?? '');
  }
  for (const name of Object.keys(form.files)) out[name] = '<binary>';
  return out;
}
