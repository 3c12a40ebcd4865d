/**
 * Turn YAML text (or JSON, which YAML reads too) into a value checked by a
 * zod schema, with errors an operator can act on: each names the file and
 * line, the key, the offending value and what is expected, and an unknown
 * key comes with a "did you mean".
 */
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** Where a key's value came from, when it did not come from the file. */
type Sources = ReadonlyMap<string, string>;

export interface Source {
  /** Shown in messages, e.g. 'ferry.yaml'. */
  name: string;
  doc: Document;
  lines: LineCounter;
}

export function parseYaml(name: string, text: string): { source: Source; value: unknown } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const line = lines.linePos(e.pos[0]).line;
        return `${name}${line ? `:${line}` : ''}: not valid YAML: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  return { source: { name, doc, lines }, value: doc.toJS() ?? {} };
}

/** Validate `value` against `schema`; `sources` names keys set by the environment or flags. */
export function validate<S extends z.ZodType>(schema: S, value: unknown, source: Source | null, sources: Sources = new Map()): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => describe([...issue.path, key], unknownKey(schema, issue.path, key, value), source, sources, true));
    }
    const path = issue.path;
    if (issue.code === 'invalid_key') {
      return [describe(path, `${show(path[path.length - 1])} is not ${issue.issues[0]?.message ?? 'a valid key'}`, source, sources, true)];
    }
    const got = valueAt(value, path);
    const message = got === undefined ? `missing; expected ${issue.message}` : `${show(got)} is not ${issue.message}`;
    return [describe(path, message, source, sources, false)];
  });
  throw new ConfigError(problems);
}

function describe(path: PropertyKey[], message: string, source: Source | null, sources: Sources, atKey: boolean): string {
  const key = path.map(String).join('.');
  for (let n = path.length; n > 0; n--) {
    const from = sources.get(path.slice(0, n).map(String).join('.'));
    // A flag names its key already; an environment variable's name is less obvious.
    if (from) return from.startsWith('--') ? `${from}: ${message}` : `${from}: ${key}: ${message}`;
  }
  const line = source ? lineOf(source, path, atKey) : null;
  const where = source ? `${source.name}${line ? `:${line}` : ''}: ` : '';
  return `${where}${key || '(top level)'}: ${message}`;
}

function lineOf(source: Source, path: PropertyKey[], atKey: boolean): number | null {
  // The deepest node that exists: a missing key is reported where its parent is.
  for (let n = path.length; n >= 0; n--) {
    const parent = source.doc.getIn(path.slice(0, Math.max(0, n - 1)), true);
    let offset: number | undefined;
    if (n === 0) offset = source.doc.contents?.range?.[0];
    else if (isMap(parent)) {
      const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(path[n - 1]));
      const node = atKey || n < path.length ? pair?.key : (pair?.value ?? pair?.key);
      offset = (node as { range?: [number, number, number] } | undefined)?.range?.[0];
    } else {
      offset = (source.doc.getIn(path.slice(0, n), true) as { range?: [number] } | undefined)?.range?.[0];
    }
    if (offset !== undefined) return source.lines.linePos(offset).line;
  }
  return null;
}

function valueAt(value: unknown, path: PropertyKey[]): unknown {
  let at = value;
  for (const key of path) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null (empty)';
  if (typeof value === 'object') return Array.isArray(value) ? (value.length === 0 ? 'an empty list' : 'a list') : 'a mapping';
  return String(value);
}

/** Keys people write from habit, with what to do instead. */
const HINTS: Readonly<Record<string, string>> = {
  password: 'plain passwords are not accepted; put a hash in passwordHash (make one with `ferry hash-password`)',
};

/**
 * A spelling of this level's keys comes first; then the same name in
 * another section (`maxConnections` at the top is `limits.maxConnections`),
 * since a right name in the wrong place is the likelier slip than a near
 * miss here (`root` at the top is `storage.root`, not `port`).
 */
function unknownKey(schema: z.ZodType, path: PropertyKey[], key: string, value: unknown): string {
  const known = keysAt(schema, path, value);
  if (HINTS[key] && known.length > 0) return HINTS[key];
  const suggestion = closest(key, known);
  const sameName = suggestion !== null && squash(suggestion) === squash(key);
  const elsewhere = sameName ? null : settingNamed(schema, key, path.map(String).join('.'));
  if (elsewhere) return `unknown setting here; did you mean "${elsewhere}"${elsewhere.includes('.') ? '' : ' (at the top level)'}?`;
  if (suggestion) return `unknown setting; did you mean "${suggestion}"?`;
  return known.length > 0 ? `unknown setting; expected one of ${known.join(', ')}` : 'unknown setting';
}

/** The full path of the setting called `name` (without case or separators) in any section but `exceptIn`, e.g. "limits.maxConnections". */
export function settingNamed(schema: z.ZodType, name: string, exceptIn = ''): string | null {
  for (const path of leafPaths(schema)) {
    if (path.length > 0 && squash(path[path.length - 1]!) === squash(name) && path.slice(0, -1).join('.') !== exceptIn) return path.join('.');
  }
  return null;
}

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  options?: z.ZodType[];
  valueType?: z.ZodType;
  element?: z.ZodType;
  in?: z.ZodType;
}
const def = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The object schema reached by `path` (unwrapping defaults, unions by their `type` or by being a list, lists, records). */
function objectAt(schema: z.ZodType, path: PropertyKey[], value: unknown): Def | null {
  let d = def(schema);
  let at = value;
  for (let i = 0; ; ) {
    if (d.innerType) d = def(d.innerType);
    else if (d.type === 'pipe' && d.in) d = def(d.in);
    else if (d.options) {
      const wanted = (at as { type?: unknown } | null)?.type;
      const option =
        d.options.find((o) => (def(o).shape?.type as unknown as { _zod?: { def: { values?: unknown[] } } })?._zod?.def.values?.includes(wanted)) ??
        // A union of a scalar and a list (masqueradeAddress): the list, when the value is one.
        (Array.isArray(at) ? d.options.find((o) => def(o).element) : undefined);
      if (!option) return null;
      d = def(option);
    } else if (i === path.length) return d.shape ? d : null;
    else if (d.shape) {
      const next = d.shape[String(path[i])];
      if (!next) return null;
      at = (at as Record<PropertyKey, unknown>)?.[path[i]!];
      d = def(next);
      i++;
    } else if (d.element && typeof path[i] === 'number') {
      at = (at as unknown[] | undefined)?.[path[i] as number];
      d = def(d.element);
      i++;
    } else if (d.valueType) {
      at = (at as Record<PropertyKey, unknown>)?.[path[i]!];
      d = def(d.valueType);
      i++;
    } else return null;
  }
}

function keysAt(schema: z.ZodType, path: PropertyKey[], value: unknown): string[] {
  return Object.keys(objectAt(schema, path, value)?.shape ?? {});
}

/** A key as compared: without case or separators. */
const squash = (s: string) => s.toLowerCase().replace(/[-_. ]/g, '');

/** The known key closest to `key`: the same letters without case or separators, or a small edit away. */
export function closest(key: string, known: readonly string[]): string | null {
  const exact = known.find((k) => squash(k) === squash(key));
  if (exact) return exact;
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(squash(key), squash(candidate));
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Every settable leaf of an object schema, as paths (for environment variables). */
export function leafPaths(schema: z.ZodType, prefix: string[] = []): string[][] {
  let d = def(schema);
  while (d.innerType) d = def(d.innerType);
  if (d.shape) return Object.entries(d.shape).flatMap(([key, child]) => leafPaths(child, [...prefix, key]));
  if (d.options && d.options.every((o) => def(o).shape)) {
    const seen = new Map<string, string[]>();
    for (const option of d.options) for (const path of leafPaths(option, prefix)) seen.set(path.join('.'), path);
    return [...seen.values()];
  }
  return [prefix];
}

/** The schema of the leaf at `path`, for parsing an environment value into the type it expects. */
export function leafSchema(schema: z.ZodType, path: string[]): z.ZodType[] {
  let d = def(schema);
  while (d.innerType) d = def(d.innerType);
  if (path.length === 0) return [schema];
  if (d.shape) return d.shape[path[0]!] ? leafSchema(d.shape[path[0]!]!, path.slice(1)) : [];
  if (d.options) return d.options.flatMap((o) => leafSchema(o, path));
  return [];
}
