/**
 * What a worker kind is: a set of task handlers keyed by capability, plus optional lifecycle hooks. The
 * shared worker runtime (`server.ts`) owns everything else: sockets, slots, deadlines, cancellation,
 * progress, heartbeats, /health, /metrics, drain. A kind never talks to the manager directly.
 *
 * Results cross the handler boundary as values; a failure is a thrown `FleetError` with a code from the one
 * table in `protocol/errors.ts` (anything else thrown becomes `handler_error`).
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { WorkerSectionConfig } from '../../config/schema.js';

export interface ProgressUpdate {
  percent?: number;
  message?: string;
  log?: { stream: 'stdout' | 'stderr' | 'log'; data: string };
  partial?: unknown;
}

/** Binary output of a task. The runtime base64-encodes it on the wire; the manager serves it by URL. */
export interface Artifact {
  name: string;
  contentType: string;
  data: Buffer;
}

export interface TaskOutput<R = unknown> {
  output: R;
  artifacts?: Artifact[];
}

export interface TaskContext {
  taskId: string;
  attempt: number;
  capability: string;
  sessionId: string | undefined;
  /** Aborted on timeout, cancel, a dropped manager connection or a forced stop. `signal.reason` is a FleetError. */
  signal: AbortSignal;
  /** Absolute deadline, epoch ms. */
  deadline: number;
  /** Sends a `task.progress`. Cheap; the runtime coalesces and drops nothing but may batch. */
  progress(update: ProgressUpdate): void;
  logger: Logger;
}

/**
 * `R` is what `run` returns as `output`. Declare it as `z.infer` of the `resultSchema` (every built-in
 * handler does): the advertised schema and the code then cannot drift apart without a type error.
 */
export interface TaskHandler<P = unknown, R = unknown> {
  capability: string;
  /** One sentence an operator (or an LLM choosing a tool) can act on. */
  description: string;
  /** Validates the task payload; a failure answers `invalid_payload` naming the field. */
  payloadSchema: z.ZodType<P>;
  /**
   * The shape of `output`, advertised to the manager's catalog (and MCP clients, which reject a
   * `structuredContent` that does not match it) as JSON Schema. Every built-in handler has one (a unit test
   * checks); optional for test kinds and peers from before issue 18.
   */
  resultSchema?: z.ZodType<R>;
  /** Running it twice has the effect of running it once. */
  idempotent?: boolean;
  /** Changes nothing outside the task's own sandbox. */
  readOnly?: boolean;
  /** Content types of the artifacts it can return (`*` for any file). */
  artifactTypes?: string[];
  run(payload: P, ctx: TaskContext): Promise<TaskOutput<R>>;
}

export interface WorkerKindContext {
  config: WorkerSectionConfig;
  logger: Logger;
  metrics: Registry;
}

export interface WorkerKind {
  /** The spec's workerType: 'python-sandbox' | 'figma-mcp' | 'browser-worker' | 'echo'. */
  type: string;
  version: string;
  handlers: TaskHandler<any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Starts pools, probes the machine. Throwing here stops the worker with that message. */
  start?(ctx: WorkerKindContext): Promise<void>;
  /** Releases everything the kind started (processes, browsers); called once on stop. */
  stop?(): Promise<void>;
  /** Extra facts for /health and heartbeats (isolation level, pool state). */
  info?(): Record<string, unknown>;
  /** False while the kind cannot take tasks (for example no browser launched yet); /health then says not ready. */
  ready?(): boolean;
  /** Extra HTTP routes on the worker's port (figma: POST /mcp). */
  routes?(app: FastifyInstance): void | Promise<void>;
}
