/**
 * The client channel: one WebSocket (`GET /api/channel`) over which a client (FleetClient with
 * `channel: 'websocket'`) submits, waits for, cancels and follows tasks, many at once, each request named by
 * a client-chosen `rid`. Every frame is a JSON object with a string `type`; docs/protocol.md has the table.
 *
 * client → manager: submit, submitMany, wait, cancel, get
 * manager → client: hello (first, once), accepted, result, progress, task, error
 *
 * A request is in flight from its frame until its last answer: `result` for a waited submit or a wait,
 * `accepted` for a submit without wait, `task` for get and cancel, or an `error` carrying its rid.
 */
import { z } from 'zod';

/** Longest request id; clients use a counter. */
const rid = z.string().min(1).max(100);
const taskId = z.string().min(1).max(200);

export const ChannelSubmitSchema = z.object({
  type: z.literal('submit'),
  rid,
  /** The task as `POST /api/tasks` takes it; validated by the manager's own submission rules. */
  task: z.unknown(),
  /** Answer with `result` once the task is final (after `accepted`). */
  wait: z.boolean().optional(),
  /** Forward the task's progress reports as `progress` frames while waiting. */
  progress: z.boolean().optional(),
});

export const ChannelSubmitManySchema = z.object({
  type: z.literal('submitMany'),
  rid,
  tasks: z.array(z.unknown()),
});

export const ChannelWaitSchema = z.object({
  type: z.literal('wait'),
  rid,
  taskId,
  progress: z.boolean().optional(),
});

export const ChannelCancelSchema = z.object({ type: z.literal('cancel'), rid, taskId });
export const ChannelGetSchema = z.object({ type: z.literal('get'), rid, taskId });

export const ClientToManagerSchema = z.discriminatedUnion('type', [
  ChannelSubmitSchema,
  ChannelSubmitManySchema,
  ChannelWaitSchema,
  ChannelCancelSchema,
  ChannelGetSchema,
]);
export type ClientToManager = z.infer<typeof ClientToManagerSchema>;

/** Request frames that change state and so need the operator token, not the read-only one. */
export const WRITE_REQUESTS: ReadonlySet<string> = new Set(['submit', 'submitMany', 'cancel']);

export interface ChannelHello {
  type: 'hello';
  managerId: string;
  /** Requests this connection may have in flight; the client queues the rest. */
  maxInFlight: number;
  /** Largest frame the manager reads. */
  maxFrameBytes: number;
  access: 'read' | 'write';
}

/** What the manager sends; `task` is the same public task view as the HTTP API's. */
export type ManagerToClient =
  | ChannelHello
  | { type: 'accepted'; rid: string; task: Record<string, unknown>; created: boolean }
  | { type: 'accepted'; rid: string; tasks: { task: Record<string, unknown>; created: boolean }[] }
  | { type: 'result'; rid: string; task: Record<string, unknown> }
  | { type: 'task'; rid: string; task: Record<string, unknown> }
  | {
      type: 'progress';
      rid: string;
      taskId: string;
      attempt: number;
      percent?: number;
      message?: string;
      log?: { stream: string; data: string };
    }
  | {
      type: 'error';
      rid?: string;
      error: { code: string; message: string; retryable: boolean; details?: Record<string, unknown> };
    };
