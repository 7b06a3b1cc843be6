/**
 * The BullMQ job *is* the task record (docs/distributed.md: One model). This module reads a record out of
 * a job's hash:
 * - `data`: the record as Fleet last wrote it (at submit, retry, re-route and hand-back), with `jobStarts`,
 *   how many of the job's activations (BullMQ's `ats`, counted by every `moveToActive`) it accounts for;
 * - a claim writes nothing of its own: BullMQ's `moveToActive` sets the lock (`<job>:lock`, the lease
 *   token), `pb` (the claiming Worker's name: Fleet's worker id), `processedOn` and `ats` in one step, and
 *   the record reads as assigned from them (`startedAttempts`). An activation the record does not account
 *   for and whose lock is gone was an attempt lost with its manager (it stopped renewing), and reads as
 *   that attempt's outcome applied, before any process has written it (`loseAttempt`);
 * - `progress`: `{l: lease, a: time, p?: progress}` once the worker runs the attempt of lease `l`;
 * - `returnvalue` / `failedReason`: the final record, written by BullMQ's own moveToCompleted/moveToFailed
 *   in the step that checks the lock, so a final record exists only if its lease was current.
 *
 * Every record read back is validated (stored-record.ts): another process or an operator may have written it.
 */
import { FleetError } from '../../../protocol/errors.js';
import type { ErrorBody } from '../../../protocol/messages.js';
import { zodToFleetError } from '../../../protocol/zod-error.js';
import { TaskRecordSchema } from '../stored-record.js';
import { assignTask, failTask } from '../task-transitions.js';
import type { TaskQueueOptions } from '../task-queue.js';
import type { TaskRecord, TaskState } from '../task.js';

/** The fields of a job hash this module reads (HGETALL gives them all, as strings). */
export type JobHash = Record<string, string>;

/** The field of a job's data that counts the activations its record accounts for (never in a TaskRecord). */
const JOB_STARTS = 'jobStarts';

/** A record as job data: the record plus the number of the job's activations it accounts for. */
export function dataOf(t: TaskRecord, jobStarts: number): TaskRecord {
  return jobStarts > 0 ? ({ ...t, [JOB_STARTS]: jobStarts } as TaskRecord) : t;
}

/** The activations a job's data accounts for (0 when it cannot tell). */
export function accountedStarts(hash: JobHash): number {
  try {
    const n = (JSON.parse(hash.data ?? '{}') as Record<string, unknown>)[JOB_STARTS];
    return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

/** Takes `jobStarts` out of a record parsed from job data. */
export function splitData(t: TaskRecord): { t: TaskRecord; jobStarts: number } {
  const bag = t as TaskRecord & { [JOB_STARTS]?: unknown };
  const n = bag[JOB_STARTS];
  if (n === undefined) return { t, jobStarts: 0 };
  delete bag[JOB_STARTS];
  return { t, jobStarts: typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 0 };
}

export interface RunningMark {
  l: string;
  a: number;
  p?: TaskRecord['progress'];
}

/** Parses one record a job carries (`data`, `returnvalue`, or `failedReason`); `key` names it for errors. */
export function parseRecord(json: string, key: string, field = 'data'): TaskRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new FleetError(
      'store_corrupt',
      `the record at ${key} (${field}) is not JSON: ${(err as Error).message}`,
      {
        details: { key },
      },
    );
  }
  const parsed = TaskRecordSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const e = zodToFleetError(parsed.error, 'store_corrupt', `the record at ${key} (${field}) is not a task:`);
  throw new FleetError('store_corrupt', e.message, { details: { key, ...e.details } });
}

/**
 * The record a job holds. `lock` is the job's lock value (null when unlocked); undefined when the caller
 * did not read it, which trusts `data` as written. Throws `store_corrupt`.
 */
export function recordOfJob(
  hash: JobHash,
  lock: string | null | undefined,
  key: string,
  policy: Pick<TaskQueueOptions, 'backoffMs' | 'maxBackoffMs'> & { random: () => number },
): TaskRecord {
  if (hash.finishedOn !== undefined) {
    if (hash.failedReason !== undefined && hash.failedReason !== '')
      return parseRecord(hash.failedReason, key, 'failedReason');
    if (hash.returnvalue !== undefined) return parseRecord(hash.returnvalue, key, 'returnvalue');
  }
  const { t, jobStarts } = splitData(parseRecord(hash.data ?? '', key));
  if (t.state === 'queued') {
    startedAttempts(t, jobStarts, {
      activations: Number(hash.ats ?? 0),
      lock: lock ?? null,
      workerId: hash.pb,
      at: Number(hash.processedOn ?? t.updatedAt),
      policy,
    });
    // (startedAttempts changed the state, which the type checker took for 'queued' still.)
    if ((t.state as TaskState) === 'assigned') applyMark(t, hash.progress);
    return t;
  }
  // A record written as assigned (by an older version of the store): its lease is the lock's, or lost.
  if ((t.state === 'assigned' || t.state === 'running') && t.leaseToken !== undefined) {
    if (lock !== undefined && lock !== t.leaseToken) {
      loseAttempt(t, Number(hash.processedOn ?? t.updatedAt), policy);
      return t;
    }
    applyMark(t, hash.progress);
  }
  return t;
}

/** The running mark (and progress) the job holds for the record's current lease, if any. */
function applyMark(t: TaskRecord, progress: string | undefined): void {
  const mark = parseMark(progress);
  if (!mark || mark.l !== t.leaseToken) return;
  t.state = 'running';
  if (mark.p) t.progress = { ...t.progress, ...mark.p };
  t.updatedAt = Math.max(t.updatedAt, mark.a);
}

/**
 * Applies to a queued record the job's activations it does not account for: each one whose lock is gone
 * was an attempt lost with its manager; the last one, when `lock` is its live lease, is the attempt now
 * assigned (to `workerId`, from `at`). Only the last activation's worker and time are known (BullMQ keeps
 * the latest): earlier lost ones, which only a manager dying twice on the same task leaves, are recorded
 * at `at` by `workerId` too. Returns whether the record changed.
 */
export function startedAttempts(
  t: TaskRecord,
  jobStarts: number,
  job: {
    activations: number;
    lock: string | null;
    workerId: string | undefined;
    at: number;
    policy: Pick<TaskQueueOptions, 'backoffMs' | 'maxBackoffMs'> & { random: () => number };
  },
): boolean {
  const unaccounted = job.activations - jobStarts;
  if (unaccounted <= 0 || t.state !== 'queued') return false;
  const workerId = job.workerId ?? 'unknown';
  for (let i = 0; i < unaccounted - (job.lock ? 1 : 0); i++) {
    assignTask(t, workerId, '', job.at);
    if (!loseAttempt(t, job.at, job.policy)) return true;
  }
  if (job.lock) assignTask(t, workerId, job.lock, job.at);
  return true;
}

export function parseMark(progress: string | undefined): RunningMark | undefined {
  if (!progress || progress[0] !== '{') return undefined;
  try {
    const m = JSON.parse(progress) as RunningMark;
    return typeof m.l === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Ends an attempt whose lease was lost with its manager (its lock lapsed); true when the task may run
 * again (it is then `queued`), false when that was its last attempt (it is then `failed`).
 */
export function loseAttempt(
  t: TaskRecord,
  now: number,
  policy: Pick<TaskQueueOptions, 'backoffMs' | 'maxBackoffMs'> & { random: () => number },
): boolean {
  const error: ErrorBody = {
    code: 'worker_lost',
    message: 'the manager running the task stopped renewing its lease (lock expired)',
    retryable: true,
  };
  const decision = failTask(t, error, { outcome: 'worker_lost' }, policy, now);
  delete t.workerId;
  delete t.leaseToken;
  // BullMQ already waited out the lock; another backoff on top would only delay recovery.
  if (decision.kind === 'retry') t.notBefore = now;
  return decision.kind === 'retry';
}
