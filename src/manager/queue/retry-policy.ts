/**
 * The retry policy as pure functions, so the memory and the Redis stores apply exactly the same one
 * (docs/architecture.md, Tasks: default 3 attempts, exponential backoff with jitter, application errors retried only when
 * marked retryable; worker loss and timeouts always retried while attempts remain).
 */
import type { ErrorBody } from '../../protocol/messages.js';
import type { TaskRecord, TaskState } from './task.js';
import { retryDelay, type FailOptions, type TaskQueueOptions } from './task-queue.js';

/** Codes that are retried whatever the error body says: the work itself did not fail, its runner did. */
export const ALWAYS_RETRYABLE_CODES: readonly string[] = ['timeout', 'worker_lost'];

export function isRetryableFailure(error: ErrorBody, options: FailOptions): boolean {
  if (options.retryable !== undefined) return options.retryable;
  return error.retryable || ALWAYS_RETRYABLE_CODES.includes(error.code);
}

export type FailureDecision =
  | { kind: 'retry'; notBefore: number; error: ErrorBody }
  | { kind: 'final'; state: Extract<TaskState, 'failed' | 'timed_out'>; error: ErrorBody };

/** Workers that died or hung under one task before it is declared `poison_task`. */
export const POISON_AFTER = 2;

/** `details.upstreamAttempts`: how many upstream tries the worker spent on this attempt (its own retries). */
function upstreamTries(error: ErrorBody | undefined): number | undefined {
  const n = error?.details?.upstreamAttempts;
  return typeof n === 'number' && Number.isFinite(n) && n >= 1 ? Math.min(Math.floor(n), 1000) : undefined;
}

/**
 * The earliest next try the upstream asked for: `details.retryAfterMs`, or `details.retryAfter` in seconds
 * (HTTP Retry-After's unit, as the figma worker reports it, rate-limit resets included).
 */
function retryAfterMs(error: ErrorBody): number | undefined {
  const d = error.details;
  const ms =
    typeof d?.retryAfterMs === 'number'
      ? d.retryAfterMs
      : typeof d?.retryAfter === 'number'
        ? d.retryAfter * 1000
        : undefined;
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? Math.min(ms, 7 * 24 * 3600_000) : undefined;
}

/**
 * What `fail()` does with a task whose current attempt (`task.attempt`) just failed. When a retryable error
 * used up every attempt the last error is kept, with `details.attempts` telling how many were made.
 */
export function decideFailure(
  task: Pick<TaskRecord, 'attempt' | 'maxAttempts'> &
    Partial<Pick<TaskRecord, 'attempts' | 'createdAt' | 'timeoutMs'>>,
  error: ErrorBody,
  options: FailOptions,
  queue: Pick<TaskQueueOptions, 'backoffMs' | 'maxBackoffMs' | 'random'>,
  now: number,
): FailureDecision {
  const attempts = task.attempts ?? [];
  // A task that took down two workers (their process died or stopped answering under it) is not given a
  // third: BullMQ's maxStalledCount is the precedent. Losses the task cannot have caused (a manager's lock
  // expiring, a hand-back, ownership moving) carry no `felled` mark and do not count.
  const felled = attempts.filter(
    (a) => a.error?.details?.felled === true || a.error?.details?.hung === true,
  ).length;
  if (felled >= POISON_AFTER) {
    return {
      kind: 'final',
      state: 'failed',
      error: {
        code: 'poison_task',
        message:
          `the task was running on ${felled} workers that died or hung under it; not retried (last: ${error.message})`.slice(
            0,
            10_000,
          ),
        retryable: false,
        details: { workersLost: felled, lastError: error.code },
      },
    };
  }
  const retryable = isRetryableFailure(error, options);
  // One budget across both layers: a worker that retried upstream itself reports its tries.
  const spent = attempts.reduce((n, a) => n + Math.max(1, upstreamTries(a.error) ?? 1), 0);
  if (retryable && task.attempt < task.maxAttempts && spent < task.maxAttempts) {
    const delay = retryDelay(task.attempt, queue.backoffMs, queue.maxBackoffMs, queue.random);
    const retryAfter = retryAfterMs(error);
    const notBefore = now + Math.max(delay, retryAfter ?? 0);
    const deadline =
      task.createdAt !== undefined && task.timeoutMs !== undefined
        ? task.createdAt + task.timeoutMs * task.maxAttempts
        : Number.POSITIVE_INFINITY;
    // The upstream's word is honoured; when it points past the task's deadline, fail now with its error
    // rather than make the caller wait for an attempt that cannot be made in time.
    if (retryAfter === undefined || notBefore <= deadline) return { kind: 'retry', notBefore, error };
    return {
      kind: 'final',
      state: 'failed',
      error: { ...error, details: { ...error.details, attempts: task.attempt, deadline } },
    };
  }
  const state = options.outcome === 'timed_out' ? 'timed_out' : 'failed';
  const finalError = retryable ? { ...error, details: { ...error.details, attempts: task.attempt } } : error;
  return { kind: 'final', state, error: finalError };
}
