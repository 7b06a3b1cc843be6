/**
 * The zod schemas of the manager's HTTP API, and the table of its routes. The routes in server.ts parse their
 * input with these schemas, and openapi.ts turns the same table into `GET /api/openapi.json`, so the document
 * cannot drift from what the server accepts. A test registers the server and checks that every route it has
 * is in this table (and the other way round): a new route without an entry here fails it.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../../protocol/errors.js';
import { ErrorBodySchema } from '../../protocol/messages.js';
import { zodToFleetError } from '../../protocol/zod-error.js';
import { SESSION_MODES, TASK_STATES, TaskSubmissionSchema } from '../queue/task.js';

// --- request schemas (the routes parse with these) ---

/** A route's input checked against its schema: `invalid_task` naming the first refused field. */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw zodToFleetError(r.error, 'invalid_task', `invalid ${what}:`);
}

export const ListQuery = z.object({
  state: z
    .string()
    .optional()
    .meta({ description: `Comma-separated states: ${TASK_STATES.join(', ')}.` }),
  capability: z.string().optional(),
  workerId: z.string().optional(),
  limit: z.coerce.number().int().positive().max(10_000).optional().meta({ description: 'Default 100.' }),
});

export const WaitQuery = z.object({
  timeoutMs: z.coerce
    .number()
    .int()
    .nonnegative()
    .max(3_600_000)
    .optional()
    .meta({ description: 'How long to hold the request for the final state (default 30 s).' }),
  wait: z.string().optional().meta({
    description: 'On submit: `true` or `1` answers only when the task is final or timeoutMs passes.',
  }),
});

export const RegisterBody = z.object({
  endpoint: z.string().min(1).max(2000),
  workerType: z.string().min(1).max(100).optional(),
  workerId: z.string().max(200).optional(),
});

export const BatchBody = z.object({
  tasks: z
    .array(z.unknown())
    .min(1)
    .meta({ description: 'Submissions, each as the body of POST /api/tasks.' }),
});

export { TaskSubmissionSchema };

const TaskIdParams = z.object({ id: z.string() });
const WorkerIdParams = z.object({ id: z.string() });
const ArtifactParams = z.object({ id: z.string(), name: z.string() });
const EventsQuery = z.object({
  taskId: z.string().optional().meta({ description: 'Only the events of this task.' }),
  types: z
    .string()
    .optional()
    .meta({ description: 'Comma-separated kinds: task, worker, progress (default), scaling, alert.' }),
  token: z
    .string()
    .optional()
    .meta({ description: 'The token, for clients that cannot send a header (browsers).' }),
});

// --- response schemas (what the routes answer) ---

export const ErrorResponse = z.object({
  error: ErrorBodySchema.extend({ code: z.enum(Object.keys(ERROR_CODES) as [string, ...string[]]) }),
});

const Attempt = z.object({
  attempt: z.number().int(),
  workerId: z.string(),
  startedAt: z.number(),
  finishedAt: z.number().optional(),
  outcome: z.enum(['succeeded', 'failed', 'timed_out', 'worker_lost', 'cancelled']).optional(),
  error: ErrorBodySchema.optional(),
});

export const PublicTask = z.object({
  id: z.string(),
  capability: z.string(),
  payload: z.unknown(),
  priority: z.number().int(),
  timeoutMs: z.number().int(),
  maxAttempts: z.number().int(),
  idempotencyKey: z.string().optional(),
  sessionId: z.string().optional(),
  session: z.enum(SESSION_MODES).optional(),
  sessionWorker: z.string().optional().meta({
    description: "The worker holding the task's session, while the task waits for it or runs there.",
  }),
  state: z.enum(TASK_STATES),
  attempt: z.number().int(),
  createdAt: z.number(),
  updatedAt: z.number(),
  notBefore: z.number(),
  startedAt: z.number().optional(),
  finishedAt: z.number().optional(),
  workerId: z.string().optional(),
  attempts: z.array(Attempt),
  progress: z.object({ percent: z.number().optional(), message: z.string().optional() }).optional(),
  output: z.unknown().optional(),
  artifacts: z
    .array(
      z.object({
        name: z.string(),
        contentType: z.string(),
        size: z.number().int(),
        url: z.string().meta({ description: 'Path of GET /api/tasks/{id}/artifacts/{name}.' }),
      }),
    )
    .optional(),
  error: ErrorBodySchema.optional(),
});

const TaskResponse = z.object({ task: PublicTask });
const SubmitResponse = z.object({
  task: PublicTask,
  created: z.boolean().meta({ description: 'false when an idempotency key or id matched an existing task.' }),
});

export const WorkerView = z.object({
  workerId: z.string(),
  workerType: z.string(),
  endpoint: z.string(),
  port: z.number().int(),
  status: z.enum(['online', 'offline', 'busy', 'error']),
  capabilities: z.array(z.string()),
  currentLoad: z.number(),
  lastHeartbeat: z.string().meta({ description: 'ISO 8601 time.' }),
  maxConcurrency: z.number().int(),
  inFlight: z.number().int(),
  draining: z.boolean(),
  version: z.string(),
  info: z.record(z.string(), z.unknown()),
  metrics: z.record(z.string(), z.unknown()),
  ownerId: z.string().optional(),
});

const TypeSummary = z.object({
  workers: z.number().int(),
  online: z.number().int(),
  inFlight: z.number().int(),
  capacity: z.number().int(),
});

export const StatusResponse = z.object({
  managerId: z.string(),
  workers: z.array(WorkerView),
  types: z.record(z.string(), TypeSummary),
  queue: z.object({ depth: z.number().int(), byCapability: z.record(z.string(), z.number().int()) }),
});

export const HealthResponse = z.object({
  status: z.literal('ok'),
  managerId: z.string(),
  workers: z.number().int(),
  connected: z.number().int(),
  queued: z.number().int(),
});

const RegisterResponse = z.object({
  endpoint: z.string(),
  workerId: z.string().optional(),
  error: z.string().optional(),
  code: z.string().optional(),
});

const Ok = z.object({ ok: z.boolean() });
// The autoscaler's decisions and alerts are internal shapes that change with the autoscaler; the document
// promises their envelope only.
const Loose = z.record(z.string(), z.unknown());
const ScalingResponse = z.object({ decisions: z.array(Loose), latest: z.array(Loose) });
const AlertsResponse = z.object({ active: z.array(Loose), recent: z.array(Loose) });

const CatalogEntry = z.object({
  capability: z.string(),
  description: z.string().meta({ description: 'Written for an LLM choosing a tool.' }),
  payloadSchema: z.record(z.string(), z.unknown()).optional().meta({ description: 'JSON Schema (2020-12).' }),
  resultSchema: z.record(z.string(), z.unknown()).optional(),
  idempotent: z.boolean(),
  readOnly: z.boolean(),
  artifactTypes: z.array(z.string()),
  workerTypes: z.array(z.string()),
  workers: z.number().int().meta({ description: 'Connected workers offering it now.' }),
});

const CapabilitiesResponse = z.object({
  capabilities: z.array(CatalogEntry),
  offline: z
    .array(z.string())
    .meta({ description: 'Configured or seen before, with no connected worker now (submissions queue).' }),
});

/** MCP's Streamable HTTP transport: JSON-RPC messages whose contract is the MCP specification (docs/mcp.md). */
const McpMessage = z
  .unknown()
  .meta({ description: 'A JSON-RPC 2.0 message (or batch) of the MCP protocol.' });
const mcpRoute = (method: HttpMethod, summary: string): ApiRoute => ({
  method,
  url: '/mcp',
  operationId: `mcp${method[0]}${method.slice(1).toLowerCase()}`,
  summary,
  tags: ['mcp'],
  access: 'write',
  ...(method === 'POST' ? { body: McpMessage } : {}),
  responses: {
    200: {
      description: 'JSON, or a text/event-stream of JSON-RPC messages (MCP Streamable HTTP).',
      mediaType: 'application/json',
    },
  },
});

// --- the route table ---

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

/** A response: a zod schema for JSON, or a media type and a description for anything else. */
export type RouteResponse =
  { description: string; schema: z.ZodType } | { description: string; mediaType: string; binary?: boolean };

export interface ApiRoute {
  method: HttpMethod;
  /** fastify's syntax (`:id`); openapi.ts writes `{id}`. */
  url: string;
  operationId: string;
  summary: string;
  tags: string[];
  /** `read` accepts the read-only token; `write` needs the operator token; `none` is open. */
  access: 'none' | 'read' | 'write';
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, RouteResponse>;
  /** Served as an HTTP upgrade (WebSocket), not as a fastify route. */
  upgrade?: boolean;
}

const json = (description: string, schema: z.ZodType): RouteResponse => ({ description, schema });

export const API_ROUTES: readonly ApiRoute[] = [
  {
    method: 'GET',
    url: '/health',
    operationId: 'health',
    summary: 'Liveness and a short count of workers and queued tasks.',
    tags: ['operations'],
    access: 'none',
    responses: { 200: json('The manager is up.', HealthResponse) },
  },
  {
    method: 'GET',
    url: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics.',
    tags: ['operations'],
    access: 'none',
    responses: { 200: { description: 'Prometheus text exposition format.', mediaType: 'text/plain' } },
  },
  {
    method: 'POST',
    url: '/api/tasks',
    operationId: 'submitTask',
    summary: 'Submit a task (with `wait=true`, also wait for its final state).',
    tags: ['tasks'],
    access: 'write',
    query: WaitQuery,
    body: TaskSubmissionSchema,
    responses: {
      200: json(
        'The task (final when waited for), or the existing one an idempotency key matched.',
        SubmitResponse,
      ),
      201: json('The task was queued.', SubmitResponse),
    },
  },
  {
    method: 'POST',
    // fastify's `::` is a literal colon: the path is /api/tasks:batch.
    url: '/api/tasks::batch',
    operationId: 'submitTasks',
    summary:
      'Submit many tasks at once (fan-out); every entry is checked before any is stored, a bad one names its index.',
    tags: ['tasks'],
    access: 'write',
    body: BatchBody,
    responses: {
      200: json('Every entry matched an existing task.', z.object({ tasks: z.array(SubmitResponse) })),
      201: json('At least one task was queued.', z.object({ tasks: z.array(SubmitResponse) })),
    },
  },
  {
    method: 'GET',
    url: '/api/tasks',
    operationId: 'listTasks',
    summary: 'Recent tasks, newest first.',
    tags: ['tasks'],
    access: 'read',
    query: ListQuery,
    responses: { 200: json('The tasks.', z.object({ tasks: z.array(PublicTask) })) },
  },
  {
    method: 'GET',
    url: '/api/tasks/:id',
    operationId: 'getTask',
    summary: 'One task.',
    tags: ['tasks'],
    access: 'read',
    params: TaskIdParams,
    responses: { 200: json('The task.', TaskResponse) },
  },
  {
    method: 'GET',
    url: '/api/tasks/:id/wait',
    operationId: 'waitTask',
    summary: 'Long-poll until the task is final or timeoutMs passes (then its current state).',
    tags: ['tasks'],
    access: 'read',
    params: TaskIdParams,
    query: WaitQuery.pick({ timeoutMs: true }),
    responses: { 200: json('The task.', TaskResponse) },
  },
  {
    method: 'POST',
    url: '/api/tasks/:id/cancel',
    operationId: 'cancelTask',
    summary: 'Cancel a task (a running one is stopped on its worker).',
    tags: ['tasks'],
    access: 'write',
    params: TaskIdParams,
    responses: { 200: json('The cancelled task.', TaskResponse) },
  },
  {
    method: 'POST',
    url: '/api/tasks/:id/retry',
    operationId: 'retryTask',
    summary: 'Queue a failed, cancelled or timed-out task again.',
    tags: ['tasks'],
    access: 'write',
    params: TaskIdParams,
    responses: { 200: json('The queued task.', TaskResponse) },
  },
  {
    method: 'GET',
    url: '/api/tasks/:id/artifacts/:name',
    operationId: 'getArtifact',
    summary: 'The bytes of an artifact a task returned (its content type as stored).',
    tags: ['tasks'],
    access: 'read',
    params: ArtifactParams,
    responses: { 200: { description: 'The artifact.', mediaType: 'application/octet-stream', binary: true } },
  },
  {
    method: 'GET',
    url: '/api/workers',
    operationId: 'listWorkers',
    summary: 'Every known worker with its status and metrics.',
    tags: ['workers'],
    access: 'read',
    responses: { 200: json('The workers.', z.object({ workers: z.array(WorkerView) })) },
  },
  {
    method: 'POST',
    url: '/api/workers',
    operationId: 'registerWorker',
    summary: 'Announce a worker endpoint for the manager to connect to.',
    tags: ['workers'],
    access: 'write',
    body: RegisterBody,
    responses: { 202: json('Accepted; `error` says why a connection failed.', RegisterResponse) },
  },
  {
    method: 'POST',
    url: '/api/workers/:id/drain',
    operationId: 'drainWorker',
    summary: 'Stop giving the worker new tasks; running ones finish.',
    tags: ['workers'],
    access: 'write',
    params: WorkerIdParams,
    responses: { 200: json('Draining.', Ok) },
  },
  {
    method: 'POST',
    url: '/api/workers/:id/resume',
    operationId: 'resumeWorker',
    summary: 'Give a drained worker tasks again.',
    tags: ['workers'],
    access: 'write',
    params: WorkerIdParams,
    responses: { 200: json('Resumed.', Ok) },
  },
  {
    method: 'POST',
    url: '/api/workers/:id/restart',
    operationId: 'restartWorker',
    summary: 'Ask the worker to restart (graceful).',
    tags: ['workers'],
    access: 'write',
    params: WorkerIdParams,
    responses: { 200: json('`ok` says whether the worker took the request.', Ok) },
  },
  {
    method: 'GET',
    url: '/api/status',
    operationId: 'status',
    summary: 'Workers, per-type capacity and queue depths.',
    tags: ['operations'],
    access: 'read',
    responses: { 200: json('The fleet now.', StatusResponse) },
  },
  {
    method: 'GET',
    url: '/api/scaling',
    operationId: 'scaling',
    summary: "The autoscaler's recent decisions (empty on a manager that scales nothing).",
    tags: ['operations'],
    access: 'read',
    responses: { 200: json('Decisions.', ScalingResponse) },
  },
  {
    method: 'GET',
    url: '/api/alerts',
    operationId: 'alerts',
    summary: 'Active and recent operator alerts.',
    tags: ['operations'],
    access: 'read',
    responses: { 200: json('Alerts.', AlertsResponse) },
  },
  {
    method: 'GET',
    url: '/api/capabilities',
    operationId: 'capabilities',
    summary: 'The capability catalog: what the fleet offers now, with payload and result JSON Schemas.',
    tags: ['capabilities'],
    access: 'read',
    responses: { 200: json('The catalog.', CapabilitiesResponse) },
  },
  mcpRoute('POST', 'MCP gateway: a JSON-RPC request or notification from an MCP client (docs/mcp.md).'),
  mcpRoute('GET', "MCP gateway: the session's server-to-client stream (server-sent events)."),
  mcpRoute('DELETE', 'MCP gateway: ends the MCP session (and its python session).'),
  {
    method: 'GET',
    url: '/api/openapi.json',
    operationId: 'openapi',
    summary: 'This document.',
    tags: ['operations'],
    access: 'read',
    responses: { 200: json('OpenAPI 3.1.', z.record(z.string(), z.unknown())) },
  },
  {
    method: 'GET',
    url: '/api/events',
    operationId: 'events',
    summary:
      'WebSocket: task, worker and progress events as JSON text frames; the first is {"type":"hello","managerId"}.',
    tags: ['events'],
    access: 'read',
    query: EventsQuery,
    upgrade: true,
    responses: {
      101: { description: 'Switching to the WebSocket protocol.', mediaType: 'application/json' },
    },
  },
  {
    method: 'GET',
    url: '/api/channel',
    operationId: 'clientChannel',
    summary:
      'WebSocket: the persistent client channel (submit, wait, cancel, get and progress multiplexed by request id; docs/client-channel.md).',
    tags: ['tasks'],
    access: 'read',
    upgrade: true,
    responses: {
      101: { description: 'Switching to the WebSocket protocol.', mediaType: 'application/json' },
    },
  },
];
