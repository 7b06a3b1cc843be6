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

export const SESSION_MODES = ['create-if-missing'] as const;
export type SessionMode = (typeof SESSION_MODES)[number];

/** What a client submits. */
export const TaskSubmissionSchema = z
  .object({
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
    /**
     * What to do when the session's worker is gone. Left out, such a task fails `session_lost`;
     * `create-if-missing` lets it run on any worker, which starts the session afresh and becomes its home.
     */
    session: z.enum(SESSION_MODES).optional(),
  })
  .refine((s) => s.session === undefined || s.sessionId !== undefined, {
    message: 'needs a sessionId',
    path: ['session'],
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
  session?: SessionMode;
  /**
   * The worker holding the task's session, set while the task waits for that worker (or runs there) because
   * its session lives there: only that worker takes it. Unset for the first task of a session.
   */
  sessionWorker?: string;
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
