import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CapabilityCatalog } from '../../../../src/manager/catalog/capability-catalog.js';
import {
  boundedRegExp,
  checkPattern,
  PATTERN_SEARCH_CAP,
} from '../../../../src/manager/catalog/regex-safety.js';

/** Known catastrophic patterns: exponential (EDA), polynomial (IDA) and backreferences. */
const EVIL = [
  '^(a+)+$',
  '(a|aa)+',
  '(a|aa)+$',
  '(\\w+\\s?)*$',
  '(a*)*b',
  '((ab)*)+c',
  '(a|a)*b',
  '(.*a){10}',
  '\\d+\\d+x',
  'a*a*a*b',
  '\\d+.\\d+x',
  '(x+x+)+y',
  '([a-z]+)*!',
  '(a|b|ab)*c',
  '^(a?){20}a{20}$',
  '(?=(a+)+b)',
  '(.*,)*x',
  '^(\\d+|\\d+\\.\\d+)*$',
  '(a+){2,}',
  '^(([a-z])+.)+[A-Z]([a-z])+$',
  '(a)\\1',
  '(?<n>a)\\k<n>',
];

/** Patterns zod writes for its own formats: generated schemas must keep passing. */
const ZOD_FORMATS: Record<string, z.ZodType> = {
  email: z.email(),
  uuid: z.uuid(),
  guid: z.guid(),
  datetime: z.iso.datetime(),
  date: z.iso.date(),
  time: z.iso.time(),
  duration: z.iso.duration(),
  ipv4: z.ipv4(),
  ipv6: z.ipv6(),
  cidrv4: z.cidrv4(),
  cidrv6: z.cidrv6(),
  hostname: z.hostname(),
  cuid: z.cuid(),
  cuid2: z.cuid2(),
  ulid: z.ulid(),
  nanoid: z.nanoid(),
  base64: z.base64(),
  base64url: z.base64url(),
  e164: z.e164(),
  emoji: z.emoji(),
  hex: z.hex(),
  ksuid: z.ksuid(),
  xid: z.xid(),
  lowercase: z.string().lowercase(),
  startsWith: z.string().startsWith('ab.c'),
  endsWith: z.string().endsWith('x'),
  includes: z.string().includes('y'),
};

const BENIGN = [
  '^[a-z]+$',
  '^\\d+(\\.\\d+)?(px|in|cm|mm)?$',
  '^[A-Za-z0-9_-]{1,64}$',
  'abc',
  '^https?://',
  '^(foo|bar|baz)$',
  '^\\d{4}-\\d{2}-\\d{2}$',
  '^(?:[a-z0-9-]+\\.)+[a-z]{2,}$',
  '^#[0-9a-fA-F]{6}$',
  '^(?!\\.)[\\w.]+$',
  '^[\\p{L}\\p{N} ]+$',
  '^[^\\s@]+@[^\\s@]+$',
];

/** Wall time of one match of `re` against `s`. */
function timeMatch(re: RegExp, s: string): number {
  const t = performance.now();
  re.test(s);
  return performance.now() - t;
}

describe('regex safety (the catalog refuses patterns that backtrack catastrophically)', () => {
  it.each(EVIL)('refuses %s', (pattern) => {
    const v = checkPattern(pattern);
    expect(v.safe, `${pattern} passed`).toBe(false);
    expect(v.reason).toMatch(/backtrack|backreference/);
  });

  it.each(BENIGN)('lets %s through', (pattern) => {
    expect(checkPattern(pattern)).toMatchObject({ safe: true });
  });

  it.each(Object.keys(ZOD_FORMATS))("lets zod's %s pattern through", (name) => {
    const pattern = (z.toJSONSchema(ZOD_FORMATS[name]!) as { pattern?: string }).pattern;
    expect(pattern).toBeTypeOf('string');
    expect(checkPattern(pattern!)).toMatchObject({ safe: true });
  });

  it('the evil list is really evil: V8 takes longer on 25 characters than a benign pattern on 100 000', () => {
    const linear = timeMatch(/^[a-z]+$/u, `${'a'.repeat(100_000)}!`);
    expect(timeMatch(/^(a|aa)+$/u, `${'a'.repeat(27)}!`)).toBeGreaterThan(linear);
    expect(timeMatch(/(\w+\s?)*$/u, `${'a'.repeat(22)}!`)).toBeGreaterThan(linear);
  });

  it('does not take long to decide, and refuses what it cannot decide within its budget', () => {
    const t = performance.now();
    for (const p of [...EVIL, ...BENIGN]) checkPattern(p);
    expect(performance.now() - t).toBeLessThan(2000);
    // 200 overlapping alternatives under a loop: too large a product to explore, so refused.
    const huge = `^(?:${Array.from({ length: 200 }, (_, i) => `[a-z]{${(i % 7) + 1}}x`).join('|')})+$`;
    expect(checkPattern(huge).safe).toBe(false);
  });

  it('refuses what it cannot parse (a syntax it does not know is never assumed safe)', () => {
    expect(checkPattern('(?<=a').safe).toBe(false);
    expect(checkPattern('a\\').safe).toBe(false);
  });

  it('runs an unanchored pattern (a search) only on strings up to the cap; an anchored one always', () => {
    const search = boundedRegExp('b', 'u');
    const anchored = boundedRegExp('^a+$', 'u');
    expect(search.test('a'.repeat(10))).toBe(false);
    expect(search.test('a'.repeat(PATTERN_SEARCH_CAP + 1))).toBe(true); // left to the worker's own check
    expect(anchored.test(`${'a'.repeat(PATTERN_SEARCH_CAP + 1)}!`)).toBe(false);
    // ajv keys compiled patterns by toString: two patterns must not share a key.
    expect(search.toString()).not.toBe(anchored.toString());
  });

  it('the catalog refuses a schema with an evil pattern anywhere, and checks payloads with the bounded engine', () => {
    const c = new CapabilityCatalog();
    const schema = (pattern: string, where: 'pattern' | 'patternProperties') => ({
      type: 'object',
      properties: {
        nested: where === 'pattern' ? { type: 'string', pattern } : { patternProperties: { [pattern]: {} } },
      },
    });
    const refused = c.admit(
      'w',
      't',
      ['p1', 'p2', 'ok'],
      [
        { capability: 'p1', description: '', payloadSchema: schema('(a|aa)+$', 'pattern') },
        { capability: 'p2', description: '', payloadSchema: schema('^(\\w+\\s?)*$', 'patternProperties') },
        {
          capability: 'ok',
          description: '',
          payloadSchema: {
            type: 'object',
            properties: {
              id: { type: 'string', pattern: '^[a-z]+$' },
              tag: { type: 'string', pattern: 'x' },
            },
          },
        },
      ],
    );
    expect(refused.map((r) => r.capability).sort()).toEqual(['p1', 'p2']);
    expect(refused[0]!.error.code).toBe('capability_refused');
    expect(refused[0]!.error.message).toMatch(/backtrack exponentially/);
    expect(() => c.validate('ok', { id: 'abc' })).not.toThrow();
    expect(() => c.validate('ok', { id: 'ab1' })).toThrow(/pattern/);
    expect(() => c.validate('ok', { tag: 'y' })).toThrow(/pattern/);
    // Over the cap an unanchored pattern is the worker's to check.
    expect(() => c.validate('ok', { tag: 'y'.repeat(PATTERN_SEARCH_CAP + 1) })).not.toThrow();
  });
});
