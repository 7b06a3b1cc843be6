/**
 * The task model (docs/architecture.md: Tasks). A task is submitted once and dispatched one or more times; each dispatch is an
 * attempt with its own lease token, and only the current lease may finish the task.
 */
import { z } from 'zod';
import type { ErrorBody } from '../../protocol/messages.js';

export const TASK_STATES = [
  'queued',
  'assigned',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'timed_out',
] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const FINAL_STATES: readonly TaskState[] = ['succeeded', 'failed', 'cancelled', 'timed_out'];
export const isFinal = (s: TaskState): boolean => FINAL_STATES.includes(s);

/** What a client submits. */
export const TaskSubmissionSchema = z.object({
  id: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and ._:- only')
    .optional(),
  capability: z.string().min(1).max(100),
  payload: z.unknown().default({}),
  /** Higher runs first; equal priorities run in submission order. */
  priority: z.number().int().min(-1000).max(1000).default(0),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(24 * 3600 * 1000)
    .optional(),
  maxAttempts: z.number().int().positive().max(100).optional(),
  idempotencyKey: z.string().min(1).max(200).optional(),
  sessionId: z.string().min(1).max(200).optional(),
});
export type TaskSubmission = z.input<typeof TaskSubmissionSchema>;

export interface ArtifactMeta {
  name: string;
  contentType: string;
  size: number;
}

export type AttemptOutcome = 'succeeded' | 'failed' | 'timed_out' | 'worker_lost' | 'cancelled';

export interface AttemptRecord {
  attempt: number;
  workerId: string;
  leaseToken: string;
  startedAt: number;
  finishedAt?: number;
  outcome?: AttemptOutcome;
  error?: ErrorBody;
}

export interface TaskRecord {
  id: string;
  capability: string;
  payload: unknown;
  priority: number;
  timeoutMs: number;
  maxAttempts: number;
  idempotencyKey?: string;
  sessionId?: string;
  state: TaskState;
  /** Attempts started so far. */
  attempt: number;
  createdAt: number;
  updatedAt: number;
  /** Not dispatched before this time (retry backoff). */
  notBefore: number;
  startedAt?: number;
  finishedAt?: number;
  workerId?: string;
  leaseToken?: string;
  attempts: AttemptRecord[];
  progress?: { percent?: number; message?: string };
  output?: unknown;
  artifacts?: ArtifactMeta[];
  error?: ErrorBody;
}

/** Defaults a store applies to a submission, from config. */
export interface TaskDefaults {
  /** Per capability, the worker type's timeout (ms). */
  timeoutMs(capability: string): number;
  maxAttempts: number;
}
