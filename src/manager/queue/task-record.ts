/**
 * Turning a submission into a task record, and copying records at the store boundary. Shared by the stores
 * so defaults and validation are the same everywhere.
 */
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { zodToFleetError } from '../../protocol/zod-error.js';
import { SESSION_MODES, TaskSubmissionSchema, type TaskRecord, type TaskSubmission } from './task.js';
import type { TaskQueueOptions } from './task-queue.js';

export type ParsedSubmission = z.output<typeof TaskSubmissionSchema>;

/**
 * The submission `parseSubmission` checked last: the manager parses at its edge and hands the result straight
 * to its store, which then need not parse it again. One slot, not a set of every parsed object: a WeakSet's
 * `add` and `has` were a measurable part of a no-op task's cost in the manager. A submission that is not in
 * the slot any more is parsed again, which is only slower.
 */
let lastParsed: object | undefined;

/**
 * The one validation of a submission (`invalid_task` naming the field). The manager calls it at its edge; a
 * store calls it only for a submission that did not come through it (a direct caller of the queue).
 */
export function parseSubmission(input: unknown): ParsedSubmission {
  if (input !== undefined && input === lastParsed) return input as ParsedSubmission;
  let data = plainSubmission(input);
  if (!data) {
    const parsed = TaskSubmissionSchema.safeParse(input);
    if (!parsed.success) throw zodToFleetError(parsed.error, 'invalid_task', 'invalid task:');
    data = parsed.data;
  }
  lastParsed = data;
  return data;
}

const ID = /^[A-Za-z0-9._:-]+$/;

function isString(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= max;
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/**
 * A hand-written check of the usual submission: a plain object whose every known field is present with a
 * valid value or absent (not `undefined`), returned as zod would return it (its fields in the schema's order,
 * the defaults filled in, other keys left out). Anything else is left to zod (undefined), which also words
 * the error: zod's parse was a measurable share of a no-op task's cost in the manager (docs/performance.md).
 * A test holds every submission this accepts to zod's verdict and output.
 */
export function plainSubmission(input: unknown): ParsedSubmission | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const proto = Object.getPrototypeOf(input) as unknown;
  if (proto !== Object.prototype && proto !== null) return undefined;
  const s = input as Record<string, unknown>;
  const { id, capability, payload, priority, timeoutMs, maxAttempts, idempotencyKey, sessionId, session } = s;
  if (!isString(capability, 100)) return undefined;
  if ('id' in s && !(isString(id, 200) && ID.test(id))) return undefined;
  if ('payload' in s && payload === undefined) return undefined;
  if ('priority' in s && !isInt(priority, -1000, 1000)) return undefined;
  if ('timeoutMs' in s && !isInt(timeoutMs, 1, 24 * 3600 * 1000)) return undefined;
  if ('maxAttempts' in s && !isInt(maxAttempts, 1, 100)) return undefined;
  if ('idempotencyKey' in s && !isString(idempotencyKey, 200)) return undefined;
  if ('sessionId' in s && !isString(sessionId, 200)) return undefined;
  if ('session' in s && !(SESSION_MODES as readonly unknown[]).includes(session)) return undefined;
  if (session !== undefined && sessionId === undefined) return undefined;
  // Assigned in the schema's order, as zod builds its output.
  const out: Partial<ParsedSubmission> = {};
  if (id !== undefined) out.id = id as string;
  out.capability = capability;
  out.payload = payload === undefined ? {} : payload;
  out.priority = (priority as number | undefined) ?? 0;
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs as number;
  if (maxAttempts !== undefined) out.maxAttempts = maxAttempts as number;
  if (idempotencyKey !== undefined) out.idempotencyKey = idempotencyKey as string;
  if (sessionId !== undefined) out.sessionId = sessionId as string;
  if (session !== undefined) out.session = session as (typeof SESSION_MODES)[number];
  return out as ParsedSubmission;
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
