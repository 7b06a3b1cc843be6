/**
 * Unknown keys are typos until proven otherwise: `manager: {prot: 4500}` must not start on 3000 in silence.
 * This walks a raw config beside its zod schema and reports every key no object at that place declares, with
 * the closest declared key as a suggestion. It reads the schema's structure instead of a hand-kept key list,
 * so a field added to the schema is known here at once.
 */
import type { z } from 'zod';

export interface UnknownKey {
  /** Where the key sits, e.g. ['manager'] for `manager.prot`. */
  path: string[];
  key: string;
  suggestion?: string;
}

type Def = { type: string; [k: string]: unknown };
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** Slots the main schema leaves open (`z.unknown()`) that another schema owns, by dotted path. */
export type SubSchemas = Record<string, z.ZodType>;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function findUnknownKeys(
  schema: z.ZodType,
  value: unknown,
  subSchemas: SubSchemas = {},
  path: string[] = [],
): UnknownKey[] {
  const owner = subSchemas[path.join('.')];
  if (owner && path.length > 0 && owner !== schema) return findUnknownKeys(owner, value, {}, path);
  const def = defOf(schema);
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
      return findUnknownKeys(def.innerType as z.ZodType, value, subSchemas, path);
    case 'pipe':
      return findUnknownKeys(def.in as z.ZodType, value, subSchemas, path);
    case 'lazy':
      return findUnknownKeys((def.getter as () => z.ZodType)(), value, subSchemas, path);
    case 'union': {
      // The member that takes an object is the one whose keys count.
      const member = (def.options as z.ZodType[]).find((o) => objectDef(o) !== undefined);
      return member ? findUnknownKeys(member, value, subSchemas, path) : [];
    }
    case 'array':
      if (!Array.isArray(value)) return [];
      return value.flatMap((v, i) =>
        findUnknownKeys(def.element as z.ZodType, v, subSchemas, [...path, String(i)]),
      );
    case 'record':
      if (!isPlainObject(value)) return [];
      return Object.entries(value).flatMap(([k, v]) =>
        findUnknownKeys(def.valueType as z.ZodType, v, subSchemas, [...path, k]),
      );
    case 'object': {
      if (!isPlainObject(value)) return [];
      const shape = def.shape as Record<string, z.ZodType>;
      const open = def.catchall !== undefined && defOf(def.catchall as z.ZodType).type !== 'never';
      const known = Object.keys(shape);
      const out: UnknownKey[] = [];
      for (const [k, v] of Object.entries(value)) {
        const field = shape[k];
        if (field) out.push(...findUnknownKeys(field, v, subSchemas, [...path, k]));
        else if (!open) {
          const suggestion = closest(k, known);
          out.push({ path, key: k, ...(suggestion ? { suggestion } : {}) });
        }
      }
      return out;
    }
    default:
      return [];
  }
}

function objectDef(schema: z.ZodType): Def | undefined {
  const def = defOf(schema);
  if (def.type === 'object') return def;
  if (['optional', 'nullable', 'default', 'prefault', 'catch', 'readonly'].includes(def.type))
    return objectDef(def.innerType as z.ZodType);
  if (def.type === 'pipe') return objectDef(def.in as z.ZodType);
  return undefined;
}

/** Edit distance with adjacent swaps (optimal string alignment): `prot` → `port` is one edit. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate nearest to `word`, when near enough to be a plausible typo (case and `-`/`_` ignored, at most
 * a third of the word's letters changed); undefined otherwise, so a suggestion is never a wild guess.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/-/g, '_');
  const w = norm(word);
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(w, norm(c));
    if (!best || d < best.d) best = { c, d };
  }
  if (!best) return undefined;
  const limit = Math.max(1, Math.floor(Math.max(w.length, best.c.length) / 3));
  return best.d <= limit ? best.c : undefined;
}

export function describeUnknownKey(u: UnknownKey): string {
  const where = u.path.length ? `${u.path.join('.')}: ` : '';
  return `${where}unknown key "${u.key}"${u.suggestion ? ` (did you mean "${u.suggestion}"?)` : ''}`;
}
