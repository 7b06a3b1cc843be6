import { describe, expect, it } from 'vitest';
import { publicTask } from '../../../../src/manager/http/views.js';
import type { TaskRecord } from '../../../../src/manager/queue/task.js';

/** A record with every optional field set, as the store holds it while a retried task runs. */
function fullRecord(): TaskRecord {
  return {
    id: 'task-1',
    capability: 'echo',
    payload: { n: 1 },
    priority: 2,
    timeoutMs: 1000,
    maxAttempts: 3,
    idempotencyKey: 'key-1',
    sessionId: 'session-1',
    session: 'create-if-missing',
    sessionWorker: 'w1',
    state: 'running',
    attempt: 2,
    workerId: 'w1',
    leaseToken: 'lease-2',
    createdAt: 1,
    updatedAt: 5,
    notBefore: 1,
    startedAt: 2,
    progress: { percent: 50, message: 'half' },
    output: { ok: true },
    artifacts: [{ name: 'a b.png', contentType: 'image/png', size: 3 }],
    error: { code: 'worker_lost', message: 'lost', retryable: true },
    attempts: [
      {
        attempt: 1,
        workerId: 'w0',
        leaseToken: 'lease-1',
        startedAt: 2,
        finishedAt: 3,
        outcome: 'worker_lost',
      },
      { attempt: 2, workerId: 'w1', leaseToken: 'lease-2', startedAt: 4 },
    ],
  };
}

describe('publicTask', () => {
  it('shows every field of the record but the lease tokens, as JSON', () => {
    const task = fullRecord();
    const shown = JSON.parse(JSON.stringify(publicTask(task))) as Record<string, unknown>;
    expect(JSON.stringify(shown)).not.toContain('lease-');
    const { leaseToken: _lease, attempts, artifacts, ...rest } = task;
    expect(shown).toEqual({
      ...rest,
      attempts: attempts.map(({ leaseToken: _l, ...a }) => a),
      artifacts: [{ ...artifacts![0], url: '/api/tasks/task-1/artifacts/a%20b.png' }],
    });
    // Every key of the record is there (a field added to TaskRecord is shown unless it is a secret).
    expect(Object.keys(shown).sort()).toEqual(
      Object.keys(task)
        .filter((k) => k !== 'leaseToken')
        .sort(),
    );
  });

  it('leaves the record as it was', () => {
    const task = fullRecord();
    publicTask(task);
    expect(task).toEqual(fullRecord());
  });
});
