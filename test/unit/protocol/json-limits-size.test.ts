/**
 * checkJsonLimits measures a value's serialized size on its walk instead of serializing it again (issue 16):
 * the measure must be exactly JSON.stringify's UTF-8 length, or the max_bytes bound moves.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkJsonLimits } from '../../../src/protocol/json-limits.js';

const wide = { maxDepth: 1000, maxKeys: 1_000_000, maxStringLength: 1_000_000 };
const exact = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

function holdsAt(v: unknown, maxBytes: number): boolean {
  try {
    checkJsonLimits(v, { ...wide, maxBytes }, 'value');
    return true;
  } catch (err) {
    expect(err).toMatchObject({ code: 'invalid_task', details: { limit: 'max_bytes' } });
    return false;
  }
}

// Strings over every UTF-16 code unit: escapes, non-ASCII, astral pairs and lone surrogates.
const anyString = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) });
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    anyString,
    fc.array(tie('v'), { maxLength: 5 }),
    fc.dictionary(anyString, tie('v'), { maxKeys: 5 }),
  ),
})).v;

describe('checkJsonLimits size', () => {
  it('bounds exactly at the length JSON.stringify gives, for any JSON value', () => {
    fc.assert(
      fc.property(value, (v) => {
        const n = exact(v);
        expect(holdsAt(v, n)).toBe(true);
        expect(holdsAt(v, n - 1)).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('counts escapes, lone surrogates, numbers and skipped properties as JSON writes them', () => {
    const cases: unknown[] = [
      '\u0000\u001f\b\t\n\f\r"\\',
      '\ud800',
      'a\udc00b',
      '\ud83d\ude00',
      'é中',
      1e21,
      -0,
      5e-7,
      { a: undefined, b: 1 },
      [undefined, 1],
      { '"k\n': ['x'] },
      [],
      {},
    ];
    for (const v of cases) {
      const n = exact(v);
      expect(holdsAt(v, n), JSON.stringify(v)).toBe(true);
      expect(holdsAt(v, n - 1), JSON.stringify(v)).toBe(false);
    }
  });
});
