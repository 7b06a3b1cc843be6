/**
 * The BullMQ job *is* the task record (docs/distributed.md: One model). This module reads a record out of
 * a job's hash:
 * - `data`: the record as Fleet last wrote it (at submit, claim, retry and re-route);
 * - the lock (`<job>:lock`, BullMQ's lease): holds the current lease token while an attempt is alive; a
 *   record whose lease is no longer the lock's has lost its attempt (its manager stopped renewing) and reads
 *   as that attempt's outcome applied, before any process has written it (`loseAttempt`);
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
import { failTask } from '../task-transitions.js';
import type { TaskQueueOptions } from '../task-queue.js';
import type { TaskRecord } from '../task.js';

/** The fields of a job hash this module reads (HGETALL gives them all, as strings). */
export type JobHash = Record<string, string>;

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
  const t = parseRecord(hash.data ?? '', key);
  if ((t.state === 'assigned' || t.state === 'running') && t.leaseToken !== undefined) {
    if (lock !== undefined && lock !== t.leaseToken) {
      loseAttempt(t, Number(hash.processedOn ?? t.updatedAt), policy);
      return t;
    }
    const mark = parseMark(hash.progress);
    if (mark && mark.l === t.leaseToken) {
      t.state = 'running';
      if (mark.p) t.progress = { ...t.progress, ...mark.p };
      t.updatedAt = Math.max(t.updatedAt, mark.a);
    }
  }
  return t;
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
