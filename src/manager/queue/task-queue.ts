/**
 * The queue/store seam (docs/architecture.md: Stores). One interface, two implementations (memory now, Redis/BullMQ later),
 * one contract suite (`test/contract/task-queue.contract.ts`) that both must pass.
 *
 * Late binding: tasks wait here until a worker has a free slot; the dispatcher then `claim`s the best task
 * for that worker's capabilities. Every claim mints a new lease token; `complete`/`fail` with any other token
 * throw `stale_lease` and change nothing. That is how at-least-once delivery becomes exactly-once completion.
 *
 * Retry policy lives here, so both stores apply the same one: `fail` with a retryable error re-queues the task
 * with exponential backoff and jitter until `maxAttempts` is used up; otherwise the task ends.
 */
import { FleetError } from '../../protocol/errors.js';
import type { ErrorBody } from '../../protocol/messages.js';
import type { ArtifactMeta, AttemptOutcome, TaskRecord, TaskState, TaskSubmission } from './task.js';

/** `adopt`'s check that the reporting worker is the one the lease was given to. */
export function assertLeaseHolder(task: TaskRecord, workerId: string): void {
  if (task.workerId !== workerId) {
    throw new FleetError(
      'conflict',
      `task ${task.id}: its lease was given to another worker, not to ${workerId}`,
      { details: { taskId: task.id, workerId } },
    );
  }
}

export interface SubmitResult {
  task: TaskRecord;
  /** False when an idempotency key (or explicit id) matched an existing task, which is returned instead. */
  created: boolean;
}

export interface TaskFilter {
  state?: TaskState | TaskState[];
  capability?: string;
  workerId?: string;
  limit?: number;
}

export interface FailOptions {
  outcome: Exclude<AttemptOutcome, 'succeeded' | 'cancelled'>;
  /** Overrides error.retryable; worker loss and timeouts are retried, application errors only when retryable. */
  retryable?: boolean;
}

export type TaskEvent =
  | { kind: 'submitted'; task: TaskRecord }
  | { kind: 'claimed'; task: TaskRecord }
  | { kind: 'running'; task: TaskRecord }
  | { kind: 'progress'; task: TaskRecord }
  | { kind: 'retrying'; task: TaskRecord }
  | { kind: 'finished'; task: TaskRecord };

export interface TaskQueue {
  /** Validated by the caller. Throws `queue_full` (429) when the waiting set is at its bound. */
  submit(submission: TaskSubmission): Promise<SubmitResult>;
  get(id: string): Promise<TaskRecord | undefined>;
  list(filter?: TaskFilter): Promise<TaskRecord[]>;
  /**
   * Takes the highest-priority ready task (state queued, notBefore <= now) whose capability is in
   * `capabilities`, marks it assigned to `workerId` with a fresh lease, and returns it.
   */
  claim(capabilities: readonly string[], workerId: string): Promise<TaskRecord | undefined>;
  /** assigned → running (the worker acknowledged or reported progress). Stale lease → `stale_lease`. */
  markRunning(id: string, leaseToken: string, progress?: TaskRecord['progress']): Promise<TaskRecord>;
  complete(id: string, leaseToken: string, output: unknown, artifacts?: ArtifactMeta[]): Promise<TaskRecord>;
  /** Ends the attempt; re-queues with backoff when retryable and attempts remain, else the task ends. */
  fail(id: string, leaseToken: string, error: ErrorBody, options: FailOptions): Promise<TaskRecord>;
  /**
   * Takes over a lease a worker reported after a reconnect (reconciliation): the task must be assigned or
   * running with exactly this lease token, to this worker; this process then holds (and renews) it like one it
   * claimed. Anything else changes nothing: `stale_lease` (not current, or its lock already lost), `conflict`
   * (the lease belongs to another worker), `not_found`.
   */
  adopt(id: string, leaseToken: string, workerId: string): Promise<TaskRecord>;
  /**
   * Stops holding a lease without ending the attempt (the worker went to another manager, which may adopt
   * it). True when the store lets an unadopted lease lapse by itself (Redis: its lock expires and the task is
   * recovered); false when nothing else would end it (memory), so the caller must fail it. Never throws.
   */
  release(id: string, leaseToken: string): boolean;
  /** Queued → cancelled at once; assigned/running → cancelled (the caller tells the worker). Final → `conflict`. */
  cancel(id: string, reason?: string): Promise<TaskRecord>;
  /** Puts a failed/cancelled/timed-out task back in the queue with a fresh attempt budget. */
  retry(id: string): Promise<TaskRecord>;
  /** Waiting tasks (queued), optionally for one capability. */
  depth(capability?: string): Promise<number>;
  /** Earliest notBefore among queued tasks in the future, so the dispatcher can sleep until then. */
  nextReadyAt(): Promise<number | undefined>;
  /** Subscribes to changes; returns the unsubscribe function. */
  subscribe(listener: (event: TaskEvent) => void): () => void;
  /**
   * Shared stores: calls `listener` with the typed `store_corrupt` error of every record that failed
   * validation when read back (the manager raises an alert). A store holding only its own objects has none.
   */
  onCorruptRecord?(listener: (error: FleetError) => void): () => void;
  close(): Promise<void>;
}

export interface TaskQueueOptions {
  maxQueued: number;
  retainFinished: number;
  defaultMaxAttempts: number;
  timeoutMs(capability: string): number;
  backoffMs: number;
  maxBackoffMs: number;
  /** Injectable for tests. */
  now?: () => number;
  random?: () => number;
}

/** Exponential backoff with full jitter: attempt 1 → [0.5, 1]×base, doubling, capped. */
export function retryDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + random() * 0.5));
}

/** The checks every store makes of its options, with the same `config_invalid` messages. */
export function validateTaskQueueOptions(options: TaskQueueOptions): void {
  for (const key of ['maxQueued', 'defaultMaxAttempts'] as const) {
    if (!Number.isInteger(options[key]) || options[key] < 1) {
      throw new FleetError(
        'config_invalid',
        `task queue: ${key} must be a positive integer, got ${options[key]}`,
      );
    }
  }
  for (const key of ['retainFinished', 'backoffMs', 'maxBackoffMs'] as const) {
    if (!Number.isFinite(options[key]) || options[key] < 0) {
      throw new FleetError(
        'config_invalid',
        `task queue: ${key} must be a non-negative number, got ${options[key]}`,
      );
    }
  }
}
