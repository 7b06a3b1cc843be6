/**
 * Reading task records back from a shared store. Redis holds JSON that other processes (another manager, an
 * older version, an operator with redis-cli, a bad disk) may have written; a cast would let a wrong shape
 * travel on as if it were a task and fail somewhere far away, or answer a client with nonsense. Every record
 * read is checked against the task schema instead: a bad one is a typed `store_corrupt` error naming the key,
 * reported once to the store's listener (the manager raises an alert), never a crash.
 *
 * Loose objects: fields this version does not know are kept, so a newer manager's records pass through an
 * older one unchanged.
 */
import { z } from 'zod';
import { FleetError } from '../../protocol/errors.js';
import { ErrorBodySchema } from '../../protocol/messages.js';
import { zodToFleetError } from '../../protocol/zod-error.js';
import { SESSION_MODES, TASK_STATES, type TaskRecord } from './task.js';

const time = z.number().finite();

const AttemptRecordSchema = z.looseObject({
  attempt: z.number().int().nonnegative(),
  workerId: z.string(),
  leaseToken: z.string(),
  startedAt: time,
  finishedAt: time.optional(),
  outcome: z.enum(['succeeded', 'failed', 'timed_out', 'worker_lost', 'cancelled']).optional(),
  error: ErrorBodySchema.optional(),
});

export const TaskRecordSchema = z.looseObject({
  id: z.string().min(1),
  capability: z.string().min(1),
  payload: z.unknown(),
  priority: z.number().int(),
  timeoutMs: z.number().positive(),
  maxAttempts: z.number().int().positive(),
  idempotencyKey: z.string().optional(),
  sessionId: z.string().optional(),
  session: z.enum(SESSION_MODES).optional(),
  sessionWorker: z.string().optional(),
  state: z.enum(TASK_STATES),
  attempt: z.number().int().nonnegative(),
  createdAt: time,
  updatedAt: time,
  notBefore: time,
  startedAt: time.optional(),
  finishedAt: time.optional(),
  workerId: z.string().optional(),
  leaseToken: z.string().optional(),
  attempts: z.array(AttemptRecordSchema),
  progress: z.looseObject({ percent: z.number().optional(), message: z.string().optional() }).optional(),
  output: z.unknown().optional(),
  artifacts: z
    .array(z.looseObject({ name: z.string(), contentType: z.string(), size: z.number().nonnegative() }))
    .optional(),
  error: ErrorBodySchema.optional(),
});

/** Parses and checks a stored task record; `key` names where it was read, for the error and the alert. */
export function parseStoredTask(json: string, key: string): TaskRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new FleetError('store_corrupt', `the record at ${key} is not JSON: ${(err as Error).message}`, {
      details: { key },
    });
  }
  const parsed = TaskRecordSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const e = zodToFleetError(parsed.error, 'store_corrupt', `the record at ${key} is not a task:`);
  throw new FleetError('store_corrupt', e.message, { details: { key, ...e.details } });
}
