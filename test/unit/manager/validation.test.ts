import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../../src/config/load.js';
import { WorkerManager } from '../../../src/manager/manager.js';
import { createTaskRecord, parseSubmission } from '../../../src/manager/queue/task-record.js';
import { TaskSubmissionSchema } from '../../../src/manager/queue/task.js';
import { FleetError } from '../../../src/protocol/errors.js';
import { zodToFleetError } from '../../../src/protocol/zod-error.js';

describe('zodToFleetError', () => {
  it('names the first issue where and what, with the first five issues in details', () => {
    const schema = z.object({ a: z.object({ b: z.number() }), c: z.array(z.string()) });
    const r = schema.safeParse({ a: { b: 'x' }, c: [1, 2, 3, 4, 5, 6] });
    expect(r.success).toBe(false);
    const e = zodToFleetError(r.error!, 'invalid_task', 'invalid thing:');
    expect(e).toBeInstanceOf(FleetError);
    expect(e.code).toBe('invalid_task');
    expect(e.message).toMatch(/^invalid thing: a\.b: /);
    const issues = (e.details as { issues: { path: string }[] }).issues;
    expect(issues).toHaveLength(5);
    expect(issues[1]!.path).toBe('c.0');
  });

  it('calls a failure at the root (root)', () => {
    const r = z.number().safeParse('x');
    expect(zodToFleetError(r.error!, 'invalid_payload', 'invalid payload at').message).toMatch(
      /^invalid payload at \(root\): /,
    );
  });
});

describe('a submission is validated once', () => {
  afterEach(() => vi.restoreAllMocks());

  // The usual submission is checked by hand (plainSubmission, held to zod in plain-submission.test.ts);
  // one with an explicit `undefined` field is left to zod, which lets these tests count the parses.
  it('the manager parses at its edge and the store takes the parsed value as it is', async () => {
    const manager = new WorkerManager(parseConfig({ manager: { log_level: 'silent' } }), {
      logger: pino({ level: 'silent' }),
    });
    const spy = vi.spyOn(TaskSubmissionSchema, 'safeParse');
    const { task } = await manager.submit({ capability: 'echo', payload: { n: 1 }, priority: undefined });
    expect(task.priority).toBe(0);
    expect(spy).toHaveBeenCalledTimes(1);
    // The usual submission: checked by hand, not by zod, and not again by the store.
    await manager.submit({ capability: 'echo', payload: { n: 2 } });
    expect(spy).toHaveBeenCalledTimes(1);
    await manager.stop();
  });

  it('a store still validates what did not come through the edge, and a look-alike is not taken as parsed', () => {
    const options = { defaultMaxAttempts: 3, timeoutMs: () => 1000 };
    expect(() => createTaskRecord({ capability: '' }, options, 0)).toThrow(/invalid task: capability/);
    const parsed = parseSubmission({ capability: 'echo', timeoutMs: undefined });
    // A copy of a parsed value is a new object: parsed again, not trusted.
    const spy = vi.spyOn(TaskSubmissionSchema, 'safeParse');
    createTaskRecord(parsed, options, 0);
    expect(spy).toHaveBeenCalledTimes(0);
    createTaskRecord({ ...parsed, timeoutMs: undefined }, options, 0);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(() => createTaskRecord({ ...parsed, capability: '' }, options, 0)).toThrow(
      /invalid task: capability/,
    );
  });
});
