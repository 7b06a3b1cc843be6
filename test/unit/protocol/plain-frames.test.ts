import { describe, expect, it } from 'vitest';
import { deserialize } from '../../../src/protocol/codec.js';
import { ManagerToWorkerSchema, WorkerToManagerSchema } from '../../../src/protocol/messages.js';
import { isPlainTaskAssign, isPlainTaskResult } from '../../../src/protocol/plain-frames.js';

const result = {
  type: 'task.result',
  taskId: 't-1',
  attempt: 1,
  leaseToken: 'lease-1',
  output: { echoed: { i: 1 } },
  durationMs: 0,
};
const assign = {
  type: 'task.assign',
  taskId: 't-1',
  attempt: 2,
  leaseToken: 'lease-1',
  capability: 'echo',
  payload: { i: 1 },
  deadline: 1_800_000_000_000,
  timeoutMs: 30_000,
};

/** Variants around a valid frame: each one changes one thing. */
function variants(base: Record<string, unknown>): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [base];
  const bad: unknown[] = [
    undefined,
    null,
    '',
    'x'.repeat(201),
    0,
    -1,
    1.5,
    2 ** 53,
    Number.NaN,
    true,
    {},
    [],
  ];
  for (const key of Object.keys(base)) {
    if (key === 'type') continue;
    for (const value of bad) {
      const v = { ...base };
      if (value === undefined) delete v[key];
      else v[key] = value;
      out.push(v);
    }
  }
  out.push({ ...base, extra: 1 });
  out.push({ ...base, sessionId: 's-1' }, { ...base, sessionId: '' }, { ...base, sessionId: 7 });
  out.push({ ...base, artifacts: [] });
  out.push({ ...base, capability: 'c'.repeat(100) }, { ...base, capability: 'c'.repeat(101) });
  return out;
}

describe('plain frames (the zod-free path of task.assign and task.result)', () => {
  it.each([
    ['task.result', result, isPlainTaskResult, WorkerToManagerSchema],
    ['task.assign', assign, isPlainTaskAssign, ManagerToWorkerSchema],
  ] as const)('%s: every frame the check accepts, zod accepts unchanged', (_name, base, check, schema) => {
    let accepted = 0;
    for (const frame of variants(base)) {
      if (!check(frame)) continue;
      accepted++;
      const parsed = schema.safeParse(frame);
      expect(parsed.success, JSON.stringify(frame)).toBe(true);
      expect(parsed.data, JSON.stringify(frame)).toEqual(frame);
    }
    expect(accepted).toBeGreaterThan(1);
  });

  it('a frame the check refuses still gets zod’s typed error through deserialize', () => {
    const d = deserialize(JSON.stringify({ ...result, attempt: 0 }), WorkerToManagerSchema);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error.code).toBe('invalid_message');
    const stripped = deserialize(JSON.stringify({ ...assign, extra: 1 }), ManagerToWorkerSchema);
    expect(stripped).toEqual({ ok: true, message: assign });
  });
});
