/**
 * Turning a submission into a task record, and copying records at the store boundary. Shared by the stores
 * so defaults and validation are the same everywhere.
 */
import { randomUUID } from 'node:crypto';
import { FleetError } from '../../protocol/errors.js';
import { TaskSubmissionSchema, type TaskRecord, type TaskSubmission } from './task.js';
import type { TaskQueueOptions } from './task-queue.js';

/** Validates a submission (`invalid_task` naming the field) and applies the queue's defaults. */
export function createTaskRecord(
  submission: TaskSubmission,
  options: Pick<TaskQueueOptions, 'defaultMaxAttempts' | 'timeoutMs'>,
  now: number,
): TaskRecord {
  const parsed = TaskSubmissionSchema.safeParse(submission);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(task)';
    throw new FleetError(
      'invalid_task',
      `invalid task: ${field}: ${issue?.message ?? 'does not match the task schema'}`,
      {
        details: { field },
      },
    );
  }
  const s = parsed.data;
  return {
    id: s.id ?? randomUUID(),
    capability: s.capability,
    payload: s.payload,
    priority: s.priority,
    timeoutMs: s.timeoutMs ?? options.timeoutMs(s.capability),
    maxAttempts: s.maxAttempts ?? options.defaultMaxAttempts,
    ...(s.idempotencyKey !== undefined ? { idempotencyKey: s.idempotencyKey } : {}),
    ...(s.sessionId !== undefined ? { sessionId: s.sessionId } : {}),
    ...(s.session !== undefined ? { session: s.session } : {}),
    state: 'queued',
    attempt: 0,
    createdAt: now,
    updatedAt: now,
    notBefore: now,
    attempts: [],
  };
}

/**
 * A copy a caller may keep or change without touching the store's state. Payload and output are shared,
 * not cloned: they are JSON values the store never mutates, and deep copies would dominate claim cost.
 */
export function copyTask(task: TaskRecord): TaskRecord {
  const copy: TaskRecord = { ...task, attempts: task.attempts.map((a) => ({ ...a })) };
  if (task.progress) copy.progress = { ...task.progress };
  if (task.artifacts) copy.artifacts = task.artifacts.map((a) => ({ ...a }));
  return copy;
}
