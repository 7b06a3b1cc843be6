/**
 * The task protocol between the manager and a worker: one module, both ends.
 *
 * Every frame is a JSON object with a string `type`. The worker speaks first (`hello`); the manager answers
 * `welcome` or an `error` and closes. After that the manager sends `task.assign`, `task.cancel` and `drain`;
 * the worker sends `heartbeat`, `task.progress`, `task.result` and `task.error`. Either side may send
 * `error` for a frame it could not use; the connection stays open.
 *
 * A dispatch is identified by (taskId, attempt, leaseToken). The worker echoes all three on every message
 * about the task, so the manager can drop anything from a lease that is no longer current.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

/** The upgrade header carrying the manager's one-time nonce for the worker's `hello.proof`. */
export const NONCE_HEADER = 'x-fleet-nonce';

const id = z.string().min(1).max(200);

export const ErrorBodySchema = z.object({
  code: z.string().min(1).max(100),
  message: z.string().max(10_000),
  retryable: z.boolean(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** Binary output on the wire. The manager stores it and serves it by URL; status JSON carries metadata only. */
export const WireArtifactSchema = z.object({
  name: z.string().min(1).max(255),
  contentType: z.string().min(1).max(200),
  size: z.number().int().nonnegative(),
  encoding: z.literal('base64'),
  data: z.string(),
});
export type WireArtifact = z.infer<typeof WireArtifactSchema>;

const lease = {
  taskId: id,
  attempt: z.number().int().positive(),
  leaseToken: id,
};

/**
 * What a worker says about one capability (issue 18): enough for the manager to validate payloads before
 * queuing and for an agent (through the MCP gateway) to choose and call it. The schemas are generated from the
 * handler's zod schemas (`z.toJSONSchema`); the manager bounds and compiles them and refuses what it cannot.
 */
export const CapabilityDescriptorSchema = z.object({
  capability: z.string().min(1).max(100),
  /** Written for an LLM choosing a tool. */
  description: z.string().max(4000),
  /** JSON Schema (draft 2020-12) of the payload. */
  payloadSchema: z.record(z.string(), z.unknown()),
  /** JSON Schema of the task's `output`. */
  resultSchema: z.record(z.string(), z.unknown()).optional(),
  /** Running a task twice has the effect of running it once (safe to retry or repeat). */
  idempotent: z.boolean().optional(),
  /** The task reads the world and changes nothing outside its own sandbox. */
  readOnly: z.boolean().optional(),
  /** Content types of artifacts the task can return (`image/png`, `application/pdf`; `*` for any file). */
  artifactTypes: z.array(z.string().min(1).max(200)).max(50).optional(),
});
export type CapabilityDescriptor = z.infer<typeof CapabilityDescriptorSchema>;

// worker → manager

export const HelloSchema = z.object({
  type: z.literal('hello'),
  protocolVersion: z.number().int(),
  workerId: id,
  workerType: z.string().min(1).max(100),
  capabilities: z.array(z.string().min(1).max(100)).max(100),
  maxConcurrency: z.number().int().positive(),
  version: z.string().max(100),
  /** Free-form facts for the board: isolation level, pool state. */
  info: z.record(z.string(), z.unknown()).optional(),
  /**
   * With a token: HMAC-SHA256(token, nonce + "\n" + workerId) in hex, where the nonce is the manager's
   * `x-fleet-nonce` upgrade header. The worker proves it holds the token before its id is believed.
   */
  proof: z.string().max(200).optional(),
  /** Tasks still running on the worker from before a reconnect, so the manager can reconcile. */
  inFlight: z.array(z.object(lease)).max(10_000).optional(),
  /**
   * Tasks that finished while no manager was connected: their `task.result`/`task.error` is held and sent
   * right after `welcome`. Optional (added without a version bump): a manager that does not read it takes
   * the answers as stale.
   */
  finished: z.array(z.object(lease)).max(10_000).optional(),
  /** Self-descriptions of the capabilities (optional: peers from before issue 18 send none). */
  describes: z.array(CapabilityDescriptorSchema).max(100).optional(),
});
export type Hello = z.infer<typeof HelloSchema>;

export const HeartbeatSchema = z.object({
  type: z.literal('heartbeat'),
  inFlight: z.number().int().nonnegative(),
  /** Fraction of one core used by the worker process tree since the last beat. */
  cpu: z.number().nonnegative(),
  /** Resident memory of the worker (bytes). */
  memory: z.number().nonnegative(),
  /** Fraction of the disk holding the worker's workspace that is in use, 0..1. */
  disk: z.number().min(0).max(1).optional(),
  draining: z.boolean().optional(),
  info: z.record(z.string(), z.unknown()).optional(),
});
export type Heartbeat = z.infer<typeof HeartbeatSchema>;

export const LogChunkSchema = z.object({
  stream: z.enum(['stdout', 'stderr', 'log']),
  data: z.string(),
});

export const TaskProgressSchema = z.object({
  type: z.literal('task.progress'),
  ...lease,
  percent: z.number().min(0).max(100).optional(),
  message: z.string().max(10_000).optional(),
  log: LogChunkSchema.optional(),
  partial: z.unknown().optional(),
});
export type TaskProgress = z.infer<typeof TaskProgressSchema>;

export const TaskResultSchema = z.object({
  type: z.literal('task.result'),
  ...lease,
  output: z.unknown(),
  artifacts: z.array(WireArtifactSchema).optional(),
  durationMs: z.number().nonnegative(),
});
export type TaskResult = z.infer<typeof TaskResultSchema>;

export const TaskErrorSchema = z.object({
  type: z.literal('task.error'),
  ...lease,
  error: ErrorBodySchema,
  durationMs: z.number().nonnegative(),
});
export type TaskErrorMessage = z.infer<typeof TaskErrorSchema>;

// manager → worker

export const WelcomeSchema = z.object({
  type: z.literal('welcome'),
  protocolVersion: z.number().int(),
  managerId: id,
  heartbeatIntervalMs: z.number().int().positive(),
});
export type Welcome = z.infer<typeof WelcomeSchema>;

export const TaskAssignSchema = z.object({
  type: z.literal('task.assign'),
  ...lease,
  capability: z.string().min(1).max(100),
  payload: z.unknown(),
  /** Absolute deadline, epoch milliseconds. */
  deadline: z.number().int(),
  timeoutMs: z.number().int().positive(),
  sessionId: z.string().min(1).max(200).optional(),
});
export type TaskAssign = z.infer<typeof TaskAssignSchema>;

export const TaskCancelSchema = z.object({
  type: z.literal('task.cancel'),
  taskId: id,
  leaseToken: id.optional(),
  reason: z.string().max(1000).optional(),
});
export type TaskCancel = z.infer<typeof TaskCancelSchema>;

export const DrainSchema = z.object({
  type: z.literal('drain'),
  reason: z.string().max(1000).optional(),
});
export type Drain = z.infer<typeof DrainSchema>;

/** Undoes a manager's `drain` (an operator's `fleet resume`); a worker draining to stop stays draining. */
export const ResumeSchema = z.object({
  type: z.literal('resume'),
});
export type Resume = z.infer<typeof ResumeSchema>;

// either side

export const ErrorMessageSchema = z.object({
  type: z.literal('error'),
  error: ErrorBodySchema,
  /** The `type` of the frame this answers, when it could be read. */
  inReplyTo: z.string().max(100).optional(),
  taskId: z.string().max(200).optional(),
});
export type ErrorMessage = z.infer<typeof ErrorMessageSchema>;

export const WorkerToManagerSchema = z.discriminatedUnion('type', [
  HelloSchema,
  HeartbeatSchema,
  TaskProgressSchema,
  TaskResultSchema,
  TaskErrorSchema,
  ErrorMessageSchema,
]);
export type WorkerToManager = z.infer<typeof WorkerToManagerSchema>;

export const ManagerToWorkerSchema = z.discriminatedUnion('type', [
  WelcomeSchema,
  TaskAssignSchema,
  TaskCancelSchema,
  DrainSchema,
  ResumeSchema,
  ErrorMessageSchema,
]);
export type ManagerToWorker = z.infer<typeof ManagerToWorkerSchema>;

export type Message = WorkerToManager | ManagerToWorker;
