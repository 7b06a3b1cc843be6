/**
 * Turning a submission into a task record, and copying records at the store boundary. Shared by the stores
 * so defaults and validation are the same everywhere.
 */
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { zodToFleetError } from '../../protocol/zod-error.js';
import { TaskSubmissionSchema, type TaskRecord, type TaskSubmission } from './task.js';
import type { TaskQueueOptions } from './task-queue.js';

export type ParsedSubmission = z.output<typeof TaskSubmissionSchema>;

/** Submissions `parseSubmission` has checked: a store handed one does not parse it again. */
const parsedSubmissions = new WeakSet<object>();

/**
 * The one validation of a submission (`invalid_task` naming the field). The manager calls it at its edge; a
 * store calls it only for a submission that did not come through it (a direct caller of the queue).
 */
export function parseSubmission(input: unknown): ParsedSubmission {
  if (typeof input === 'object' && input !== null && parsedSubmissions.has(input))
    return input as ParsedSubmission;
  const parsed = TaskSubmissionSchema.safeParse(input);
  if (!parsed.success) throw zodToFleetError(parsed.error, 'invalid_task', 'invalid task:');
  parsedSubmissions.add(parsed.data);
  return parsed.data;
}

/** Validates a submission (once: see parseSubmission) and applies the queue's defaults. */
export function createTaskRecord(
  submission: TaskSubmission,
  options: Pick<TaskQueueOptions, 'defaultMaxAttempts' | 'timeoutMs'>,
  now: number,
): TaskRecord {
  const s = parseSubmission(submission);
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
