import { describe, expect, it } from 'vitest';
import { accountedStarts, dataOf, recordOfJob } from '../../../../src/manager/queue/redis/job-record.js';
import { createTaskRecord } from '../../../../src/manager/queue/task-record.js';
import type { TaskRecord } from '../../../../src/manager/queue/task.js';
import { testQueueOptions } from '../../../helpers/queue-options.js';

// The Redis store's claim writes nothing to the job: the record of the attempt in progress (or lost) is
// read off BullMQ's own fields. These pin that reading.
const options = testQueueOptions();
const policy = { ...options, random: () => 0.5 };

function queued(maxAttempts = 3): TaskRecord {
  return createTaskRecord(
    { id: 'job-1', capability: 'echo', payload: { a: 1 }, maxAttempts },
    options,
    1_000,
  );
}

const hashOf = (t: TaskRecord, jobStarts: number, more: Record<string, string> = {}) => ({
  data: JSON.stringify(dataOf(t, jobStarts)),
  ...more,
});

describe('reading a Redis job as a task record', () => {
  it('reads a queued job as queued, and an activation under a live lock as assigned to the Worker named pb', () => {
    const t = queued();
    expect(recordOfJob(hashOf(t, 0), null, 'k', policy)).toMatchObject({ state: 'queued', attempt: 0 });
    const live = recordOfJob(
      hashOf(t, 0, { ats: '1', pb: 'w-1', processedOn: '2000' }),
      'lease-1',
      'k',
      policy,
    );
    expect(live).toMatchObject({
      state: 'assigned',
      attempt: 1,
      workerId: 'w-1',
      leaseToken: 'lease-1',
      startedAt: 2000,
      attempts: [{ attempt: 1, workerId: 'w-1', leaseToken: 'lease-1', startedAt: 2000 }],
    });
    expect(live).not.toHaveProperty('jobStarts');
  });

  it('takes the running mark of the live lease only', () => {
    const t = queued();
    const fields = { ats: '1', pb: 'w-1', processedOn: '2000' };
    const mine = JSON.stringify({ l: 'lease-1', a: 2500, p: { percent: 40 } });
    const other = JSON.stringify({ l: 'lease-0', a: 2500 });
    expect(recordOfJob(hashOf(t, 0, { ...fields, progress: mine }), 'lease-1', 'k', policy)).toMatchObject({
      state: 'running',
      progress: { percent: 40 },
      updatedAt: 2500,
    });
    expect(recordOfJob(hashOf(t, 0, { ...fields, progress: other }), 'lease-1', 'k', policy).state).toBe(
      'assigned',
    );
  });

  it('reads an activation whose lock is gone as an attempt lost with its manager, by the worker that ran it', () => {
    const t = queued();
    const lost = recordOfJob(hashOf(t, 0, { ats: '1', pb: 'w-1', processedOn: '2000' }), null, 'k', policy);
    expect(lost).toMatchObject({ state: 'queued', attempt: 1 });
    expect(lost.attempts).toEqual([
      expect.objectContaining({ attempt: 1, workerId: 'w-1', outcome: 'worker_lost' }),
    ]);
    expect(lost.attempts[0]?.error?.message).toContain('lock expired');
    // Once written back accounting for that activation, the same job reads the same, without a second loss.
    const written = recordOfJob(hashOf(lost, 1, { ats: '1', pb: 'w-1' }), null, 'k', policy);
    expect(written).toEqual(lost);
  });

  it('counts every unaccounted activation, and fails the task when a lost one was its last attempt', () => {
    const twice = recordOfJob(
      hashOf(queued(3), 0, { ats: '3', pb: 'w-3', processedOn: '4000' }),
      'lease-3',
      'k',
      policy,
    );
    expect(twice.attempts.map((a) => a.outcome)).toEqual(['worker_lost', 'worker_lost', undefined]);
    expect(twice).toMatchObject({ state: 'assigned', attempt: 3, leaseToken: 'lease-3' });
    const last = recordOfJob(hashOf(queued(1), 0, { ats: '1', pb: 'w-1' }), null, 'k', policy);
    expect(last).toMatchObject({ state: 'failed', error: { code: 'worker_lost' } });
  });

  it('keeps activations the record accounts for (a hand-back, a not-due claim) from counting as attempts', () => {
    const t = queued();
    const r = recordOfJob(hashOf(t, 2, { ats: '2', pb: 'w-1' }), null, 'k', policy);
    expect(r).toMatchObject({ state: 'queued', attempt: 0, attempts: [] });
    expect(accountedStarts(hashOf(t, 2))).toBe(2);
    expect(accountedStarts({ data: 'not json' })).toBe(0);
  });
});
