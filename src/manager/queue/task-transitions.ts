/**
 * The state changes of a task record, as in-place mutations shared by both stores. A store decides *whether*
 * a change may happen (lease checks, compare-and-set) and how to persist it; what the change does to the
 * record is defined once, here, so the memory and Redis stores cannot drift apart.
 */
import { FleetError } from '../../protocol/errors.js';
import type { ErrorBody } from '../../protocol/messages.js';
import { decideFailure, type FailureDecision } from './retry-policy.js';
import type { FailOptions, TaskQueueOptions } from './task-queue.js';
import type { ArtifactMeta, AttemptRecord, TaskRecord, TaskState } from './task.js';

const RETRYABLE_FINAL_STATES: readonly TaskState[] = ['failed', 'cancelled', 'timed_out'];

/** Closes the current attempt, if it belongs to the current lease. */
export function endAttempt(
  t: TaskRecord,
  now: number,
  outcome: AttemptRecord['outcome'],
  error?: ErrorBody,
): void {
  const current = t.attempts[t.attempts.length - 1];
  if (!current || current.leaseToken !== t.leaseToken) return;
  current.finishedAt = now;
  current.outcome = outcome;
  if (error) current.error = error;
}

/** queued → assigned under a new lease: a new attempt starts. */
export function assignTask(t: TaskRecord, workerId: string, leaseToken: string, now: number): void {
  t.state = 'assigned';
  t.attempt += 1;
  t.workerId = workerId;
  t.leaseToken = leaseToken;
  t.startedAt ??= now;
  t.updatedAt = now;
  t.attempts.push({ attempt: t.attempt, workerId, leaseToken, startedAt: now });
}

/**
 * assigned → running, or a progress update while running. Returns the event to announce, or undefined when
 * nothing changed (already running and no progress given).
 */
export function markTaskRunning(
  t: TaskRecord,
  progress: TaskRecord['progress'] | undefined,
  now: number,
): 'running' | 'progress' | undefined {
  const wasAssigned = t.state === 'assigned';
  if (!wasAssigned && !progress) return undefined;
  t.state = 'running';
  if (progress) t.progress = { ...t.progress, ...progress };
  t.updatedAt = now;
  return wasAssigned ? 'running' : 'progress';
}

export function completeTask(
  t: TaskRecord,
  output: unknown,
  artifacts: ArtifactMeta[] | undefined,
  now: number,
): void {
  endAttempt(t, now, 'succeeded');
  t.state = 'succeeded';
  t.output = output;
  if (artifacts) t.artifacts = artifacts.map((a) => ({ ...a }));
  // `delete` only when needed: deleting a property turns the record into a slow dictionary-mode object.
  if (t.error !== undefined) delete t.error;
  t.finishedAt = now;
  t.updatedAt = now;
}

/** Ends the attempt and applies the retry policy: back to `queued` with a backoff, or a final state. */
export function failTask(
  t: TaskRecord,
  error: ErrorBody,
  options: FailOptions,
  queue: Pick<TaskQueueOptions, 'backoffMs' | 'maxBackoffMs' | 'random'>,
  now: number,
): FailureDecision {
  endAttempt(t, now, options.outcome, error);
  const decision = decideFailure(t, error, options, queue, now);
  t.error = decision.error;
  t.updatedAt = now;
  if (decision.kind === 'retry') {
    t.state = 'queued';
    t.notBefore = decision.notBefore;
    delete t.workerId;
    delete t.leaseToken;
  } else {
    t.state = decision.state;
    t.finishedAt = now;
  }
  return decision;
}

/** Any live state → cancelled. The caller checks that the task is not final yet. */
export function cancelTask(t: TaskRecord, reason: string | undefined, now: number): void {
  const error: ErrorBody = { code: 'cancelled', message: reason ?? 'cancelled by request', retryable: false };
  if (t.state !== 'queued') endAttempt(t, now, 'cancelled', error);
  t.state = 'cancelled';
  t.error = error;
  t.finishedAt = now;
  t.updatedAt = now;
}

/** Throws `conflict` unless the task ended in a state that `retry()` may restart. */
export function assertRetryable(t: TaskRecord): void {
  if (!RETRYABLE_FINAL_STATES.includes(t.state)) {
    throw new FleetError(
      'conflict',
      `task ${t.id} is ${t.state}; only failed, cancelled or timed-out tasks can be retried`,
    );
  }
}

/** A finished task back to `queued` with a fresh attempt budget; `attempts` keeps the earlier rounds. */
export function resetForRetry(t: TaskRecord, now: number): void {
  t.state = 'queued';
  t.attempt = 0;
  t.notBefore = now;
  t.updatedAt = now;
  for (const key of [
    'error',
    'output',
    'artifacts',
    'progress',
    'finishedAt',
    'workerId',
    'leaseToken',
    'sessionWorker',
  ] as const) {
    delete t[key];
  }
}

/**
 * A queued task (or one about to be re-queued) whose session is gone with its worker: it ends `failed`
 * with `session_lost` rather than running somewhere without its state. `sessionWorker` stays: it names the
 * worker the task waited for (and, in the Redis store, the queue its job is finished in).
 */
export function failLostSession(t: TaskRecord, error: ErrorBody, now: number): void {
  t.state = 'failed';
  t.error = error;
  t.finishedAt = now;
  t.updatedAt = now;
  if (t.workerId !== undefined) delete t.workerId;
  if (t.leaseToken !== undefined) delete t.leaseToken;
}
