import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSubmission, plainSubmission } from '../../../../src/manager/queue/task-record.js';
import { TaskSubmissionSchema } from '../../../../src/manager/queue/task.js';

const base = { capability: 'echo', payload: { i: 1 } };
const full = {
  id: 'task-1',
  capability: 'echo',
  payload: { i: 1 },
  priority: 5,
  timeoutMs: 30_000,
  maxAttempts: 3,
  idempotencyKey: 'key-1',
  sessionId: 'session-1',
  session: 'create-if-missing',
};
const BAD: unknown[] = [
  undefined,
  null,
  '',
  'x'.repeat(101),
  'x'.repeat(201),
  'bad id!',
  0,
  -1,
  1.5,
  1001,
  -1001,
  101,
  24 * 3600 * 1000 + 1,
  2 ** 53,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  {},
  [],
  'create-if-missing',
  'other-mode',
];

/** Variants around valid submissions: each changes or removes one field, or adds one. */
function variants(): unknown[] {
  const out: unknown[] = [base, full, { capability: 'echo' }, { ...base, payload: null }];
  for (const start of [base, full] as Record<string, unknown>[]) {
    for (const key of Object.keys(full)) {
      for (const value of BAD) {
        out.push({ ...start, [key]: value });
        const without = { ...start };
        delete without[key];
        out.push(without);
      }
    }
  }
  out.push({ ...base, extra: 1 }, { ...full, extra: { deep: true } });
  out.push({ ...base, session: 'create-if-missing' });
  out.push(null, [], 'echo', 1, Object.create({ capability: 'echo' }) as unknown);
  out.push(Object.assign(Object.create(null) as object, base));
  out.push({ ...base, capability: 'c'.repeat(100) }, { ...base, id: 'i'.repeat(200) });
  return out;
}

describe('plainSubmission (the zod-free path of a submission)', () => {
  it('accepts only what zod accepts, and returns what zod returns', () => {
    let accepted = 0;
    for (const input of variants()) {
      const plain = plainSubmission(input);
      if (!plain) continue;
      accepted++;
      const parsed = TaskSubmissionSchema.safeParse(input);
      expect(parsed.success, JSON.stringify(input)).toBe(true);
      expect(plain, JSON.stringify(input)).toStrictEqual(parsed.data);
      expect(Object.keys(plain)).toEqual(Object.keys(parsed.data!));
    }
    expect(accepted).toBeGreaterThan(20);
  });

  it('fuzz: whatever it accepts, zod accepts with the same output', () => {
    const field = fc.oneof(
      fc.string({ maxLength: 210 }),
      fc.stringMatching(/^[A-Za-z0-9._:-]{1,10}$/),
      fc.integer({ min: -2000, max: 100_000_000 }),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constant('create-if-missing'),
      fc.jsonValue(),
    );
    const submission = fc.record(
      {
        id: field,
        capability: fc.oneof(fc.constant('echo'), field),
        payload: fc.jsonValue(),
        priority: field,
        timeoutMs: field,
        maxAttempts: field,
        idempotencyKey: field,
        sessionId: field,
        session: field,
        other: field,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(submission, (input) => {
        const plain = plainSubmission(input);
        if (!plain) return;
        const parsed = TaskSubmissionSchema.safeParse(input);
        expect(parsed.success).toBe(true);
        expect(plain).toStrictEqual(parsed.data);
      }),
      { numRuns: 3000 },
    );
  });

  it('a submission it leaves to zod gets zod’s typed error', () => {
    expect(() => parseSubmission({ ...base, priority: 1.5 })).toThrow(/invalid task: priority/);
    expect(() => parseSubmission({ ...base, session: 'create-if-missing' })).toThrow(/needs a sessionId/);
  });
});
