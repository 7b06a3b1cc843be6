/**
 * The retry policy as pure functions, so the memory and the Redis stores apply exactly the same one
 * (DESIGN §4: default 3 attempts, exponential backoff with jitter, application errors retried only when
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

/**
 * What `fail()` does with a task whose current attempt (`task.attempt`) just failed. When a retryable error
 * used up every attempt the last error is kept, with `details.attempts` telling how many were made.
 */
export function decideFailure(
  task: Pick<TaskRecord, 'attempt' | 'maxAttempts'>,
  error: ErrorBody,
  options: FailOptions,
  queue: Pick<TaskQueueOptions, 'backoffMs' | 'maxBackoffMs' | 'random'>,
  now: number,
): FailureDecision {
  const retryable = isRetryableFailure(error, options);
  if (retryable && task.attempt < task.maxAttempts) {
    const delay = retryDelay(task.attempt, queue.backoffMs, queue.maxBackoffMs, queue.random);
    return { kind: 'retry', notBefore: now + delay, error };
  }
  const state = options.outcome === 'timed_out' ? 'timed_out' : 'failed';
  const finalError = retryable ? { ...error, details: { ...error.details, attempts: task.attempt } } : error;
  return { kind: 'final', state, error: finalError };
}
