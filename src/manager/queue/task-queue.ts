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
 *
 * Session affinity lives here too, in the store, so every manager sharing it routes a session alike: the
 * session table maps a task's `sessionId` to the worker holding it. The first claim of a session's task binds
 * the session to the claiming worker (atomically: two first tasks never bind it twice); from then on its tasks
 * wait for that worker only, in a queue of their own per worker (`sessionWorker`), so they never block the
 * head of their capability's queue. `workerGone` marks the worker's sessions lost: their waiting tasks, and
 * any later one, fail `session_lost`, unless submitted with `session: "create-if-missing"`. A binding lasts
 * as long as the worker remembers the session past its last claim (`ClaimOptions.sessionKeepMs`), then it
 * is forgotten, so the table holds only sessions in use.
 *
 * A record a store hands out, returned or in an event, is a snapshot the store never changes afterwards, and
 * neither may its receiver: one snapshot may be both a method's result and its event's task, which every
 * listener shares.
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

export type TaskEvent = (
  | { kind: 'submitted'; task: TaskRecord }
  | { kind: 'claimed'; task: TaskRecord }
  | { kind: 'running'; task: TaskRecord }
  | { kind: 'progress'; task: TaskRecord }
  | { kind: 'retrying'; task: TaskRecord }
  /** A queued task changed queues: pinned to its session's worker, or released to any worker. */
  | { kind: 'routed'; task: TaskRecord }
  | { kind: 'finished'; task: TaskRecord }
) & {
  /**
   * A submission or retry another process made, announced here after the dispatcher was already told of it
   * (`TaskQueue.onRemoteWork`): listeners see it, the dispatcher does not claim for it again.
   */
  late?: true;
};

export interface ClaimOptions {
  /**
   * How long the claiming worker remembers a session after its task ends: its idle TTL, plus how long it
   * keeps an ended session's tombstone (so a late task gets the worker's own `session_expired`, not a fresh
   * session elsewhere). The binding is kept this long past the task's timeout. Default 75 minutes.
   */
  sessionKeepMs?: number;
}

/** What the session table says of one session. */
export interface SessionBinding {
  workerId: string;
  /** The worker is gone: the session's tasks fail `session_lost` (unless `create-if-missing`). */
  lost: boolean;
}

/** A python-sandbox's defaults: a 15-minute idle TTL, then an hour of tombstone. */
export const DEFAULT_SESSION_KEEP_MS = 75 * 60_000;

/** How long the table keeps a binding after a claim: the task may run its whole timeout, then the keep. */
export function sessionBindingTtlMs(timeoutMs: number, options: ClaimOptions = {}): number {
  const keep = options.sessionKeepMs;
  return Math.ceil(
    timeoutMs + (keep !== undefined && Number.isFinite(keep) && keep > 0 ? keep : DEFAULT_SESSION_KEEP_MS),
  );
}

/** The error of a task whose session's worker is gone. */
export function sessionLostError(sessionId: string, workerId: string): ErrorBody {
  return {
    code: 'session_lost',
    message: `session "${sessionId}" lived on worker ${workerId}, which is gone, and its state with it; submit with session: "create-if-missing" to start it afresh`,
    retryable: false,
    details: { sessionId, workerId },
  };
}

export interface TaskQueue {
  /** Validated by the caller. Throws `queue_full` (429) when the waiting set is at its bound. */
  submit(submission: TaskSubmission): Promise<SubmitResult>;
  get(id: string): Promise<TaskRecord | undefined>;
  list(filter?: TaskFilter): Promise<TaskRecord[]>;
  /**
   * Takes the highest-priority ready task (state queued, notBefore <= now) whose capability is in
   * `capabilities` and that `workerId` may run, marks it assigned to `workerId` with a fresh lease, and
   * returns it. A task of a session bound to another worker is never returned (it moves to that worker's
   * queue); a task of an unbound session binds it to `workerId`.
   */
  claim(
    capabilities: readonly string[],
    workerId: string,
    options?: ClaimOptions,
  ): Promise<TaskRecord | undefined>;
  /**
   * The worker is gone (lost, offline, removed): its sessions are marked lost, and its waiting tasks fail
   * `session_lost` or, when submitted with `create-if-missing`, go back to any worker. Returns how many
   * tasks it ended or released. Idempotent.
   */
  workerGone(workerId: string): Promise<number>;
  /** The session table's entry for a session, if it has one. */
  sessionBinding(sessionId: string): Promise<SessionBinding | undefined>;
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
  /**
   * Whether any task waits here (ready, pinned to a worker or in backoff), answered at once by a store that
   * alone knows: the memory store. The dispatcher then skips the claims that would find nothing (after each
   * result, and the probe after each claim). A store other processes add to leaves it out.
   */
  hasQueued?(): boolean;
  /** Earliest notBefore among queued tasks in the future, so the dispatcher can sleep until then. */
  nextReadyAt(): Promise<number | undefined>;
  /** Subscribes to changes; returns the unsubscribe function. */
  subscribe(listener: (event: TaskEvent) => void): () => void;
  /**
   * Shared stores: another process made `n` tasks ready to claim. Called as soon as this process learns of
   * them, before their events (which then come `late`, or not at all when nobody needs their records soon).
   */
  onRemoteWork?(listener: (n: number) => void): () => void;
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
