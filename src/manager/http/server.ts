/**
 * The manager's HTTP + WebSocket API (fastify): tasks, workers, status, a live event stream, /metrics and
 * /health. Every error leaves as `{ error: { code, message, retryable, details? } }` with the code's HTTP
 * status, so clients match on codes, never on text.
 *
 * Auth: with `manager.token` set, every /api call needs `Authorization: Bearer <token>` (or `?token=` where a
 * header cannot be sent: browsers' WebSockets). `manager.read_token`, when set, is accepted for reads only
 * (GET and the event stream), so a wall-mounted dashboard can watch without being able to act.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { ERROR_CODES, FleetError, toFleetError } from '../../protocol/errors.js';
import { registerCatalogRoutes } from '../catalog/routes.js';
import { McpGateway } from '../mcp/gateway.js';
import type { ManagerEvent, WorkerManager } from '../manager.js';
import { TASK_STATES, type TaskRecord, type TaskState } from '../queue/task.js';
import type { WorkerStatusView } from '../registry/worker-registry.js';

export interface ApiServerOptions {
  token?: string;
  readToken?: string;
  bodyLimitBytes?: number;
  /** Extra routes (the dashboard) registered on the same server. */
  plugins?: ((app: FastifyInstance) => void | Promise<void>)[];
}

type Access = 'read' | 'write';

export function publicTask(task: TaskRecord): Record<string, unknown> {
  const { leaseToken: _lease, attempts, ...rest } = task;
  return {
    ...rest,
    attempts: attempts.map(({ leaseToken: _l, ...a }) => a),
    ...(task.artifacts
      ? {
          artifacts: task.artifacts.map((a) => ({
            ...a,
            url: `/api/tasks/${encodeURIComponent(task.id)}/artifacts/${encodeURIComponent(a.name)}`,
          })),
        }
      : {}),
  };
}

function tokenMatches(given: string | undefined, expected: string | undefined): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function presentedToken(req: {
  headers: IncomingMessage['headers'];
  url?: string | undefined;
}): string | undefined {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7).trim();
  const url = new URL(req.url ?? '/', 'http://x');
  return url.searchParams.get('token') ?? undefined;
}

export function authorize(
  options: Pick<ApiServerOptions, 'token' | 'readToken'>,
  req: { headers: IncomingMessage['headers']; url?: string | undefined },
  access: Access,
): void {
  if (!options.token) return;
  const given = presentedToken(req);
  if (tokenMatches(given, options.token)) return;
  if (access === 'read' && tokenMatches(given, options.readToken)) return;
  if (given && access === 'write' && tokenMatches(given, options.readToken)) {
    throw new FleetError('unauthorized', 'this token may only read; actions need the operator token');
  }
  throw new FleetError(
    'unauthorized',
    given ? 'wrong token' : 'this manager requires a token (Authorization: Bearer <token>)',
  );
}

const ListQuery = z.object({
  state: z.string().optional(),
  capability: z.string().optional(),
  workerId: z.string().optional(),
  limit: z.coerce.number().int().positive().max(10_000).optional(),
});

const WaitQuery = z.object({
  timeoutMs: z.coerce.number().int().nonnegative().max(3_600_000).optional(),
  wait: z.string().optional(),
});

const RegisterBody = z.object({
  endpoint: z.string().min(1).max(2000),
  workerType: z.string().min(1).max(100).optional(),
  workerId: z.string().max(200).optional(),
});

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const i = r.error.issues[0];
  throw new FleetError(
    'invalid_task',
    `invalid ${what}: ${i?.path.join('.') || '(root)'}: ${i?.message ?? 'invalid'}`,
  );
}

function parseStates(raw: string | undefined): TaskState[] | undefined {
  if (!raw) return undefined;
  const states = raw.split(',').map((s) => s.trim());
  for (const s of states) {
    if (!(TASK_STATES as readonly string[]).includes(s)) {
      throw new FleetError('invalid_task', `unknown state "${s}" (one of ${TASK_STATES.join(', ')})`);
    }
  }
  return states as TaskState[];
}

export function summarize(workers: WorkerStatusView[]) {
  const byType = new Map<string, { workers: number; online: number; inFlight: number; capacity: number }>();
  for (const w of workers) {
    const t = byType.get(w.workerType) ?? { workers: 0, online: 0, inFlight: 0, capacity: 0 };
    t.workers += 1;
    if (w.status === 'online' || w.status === 'busy') {
      t.online += 1;
      t.capacity += w.maxConcurrency;
    }
    t.inFlight += w.inFlight;
    byType.set(w.workerType, t);
  }
  return Object.fromEntries(byType);
}

export async function createApiServer(
  manager: WorkerManager,
  options: ApiServerOptions = {},
): Promise<FastifyInstance> {
  // return503OnClosing off: a request that arrives while the server closes still reaches the routes, which
  // answer the typed `shutting_down` (fastify's own 503 would carry no code a client can match).
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimitBytes ?? 16 * 1024 * 1024,
    return503OnClosing: false,
  });
  const guard = (access: Access) => async (req: FastifyRequest) => authorize(options, req.raw, access);

  app.setErrorHandler((err: unknown, _req, reply) => {
    const e = err as { code?: string; statusCode?: number; message?: string };
    let fleet: FleetError;
    if (err instanceof FleetError) fleet = err;
    else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      fleet = new FleetError('payload_too_large', 'request body is over the limit');
    else if (
      e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
      e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      e.statusCode === 400
    ) {
      fleet = new FleetError('invalid_task', e.message ?? 'bad request');
    } else fleet = toFleetError(err);
    void reply.code(ERROR_CODES[fleet.code].http).send({ error: fleet.toJSON() });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({
      error: new FleetError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON(),
    });
  });

  app.get('/health', async () => {
    const workers = manager.registry.list();
    return {
      status: 'ok',
      managerId: manager.id,
      workers: workers.length,
      connected: workers.filter((w) => manager.dispatcher.isConnected(w.workerId)).length,
      queued: await manager.queue.depth(),
    };
  });

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', manager.metrics.registry.contentType);
    return manager.metrics.registry.metrics();
  });

  app.post('/api/tasks', { preHandler: guard('write') }, async (req, reply) => {
    const q = parse(WaitQuery, req.query, 'query');
    if (q.wait === 'true' || q.wait === '1') {
      const { task, created } = await manager.submitAndWait(req.body ?? {}, {
        ...(q.timeoutMs !== undefined ? { timeoutMs: q.timeoutMs } : {}),
      });
      return reply.code(200).send({ task: publicTask(task), created });
    }
    const { task, created } = await manager.submit(req.body ?? {});
    return reply.code(created ? 201 : 200).send({ task: publicTask(task), created });
  });

  app.get('/api/tasks', { preHandler: guard('read') }, async (req) => {
    const q = parse(ListQuery, req.query, 'query');
    const states = parseStates(q.state);
    const tasks = await manager.listTasks({
      ...(states ? { state: states } : {}),
      ...(q.capability ? { capability: q.capability } : {}),
      ...(q.workerId ? { workerId: q.workerId } : {}),
      limit: q.limit ?? 100,
    });
    return { tasks: tasks.map(publicTask) };
  });

  app.get<{ Params: { id: string } }>('/api/tasks/:id', { preHandler: guard('read') }, async (req) => ({
    task: publicTask(await manager.getTask(req.params.id)),
  }));

  app.get<{ Params: { id: string } }>('/api/tasks/:id/wait', { preHandler: guard('read') }, async (req) => {
    const q = parse(WaitQuery, req.query, 'query');
    return {
      task: publicTask(await manager.waitForTask(req.params.id, { timeoutMs: q.timeoutMs ?? 30_000 })),
    };
  });

  app.post<{ Params: { id: string } }>(
    '/api/tasks/:id/cancel',
    { preHandler: guard('write') },
    async (req) => ({
      task: publicTask(await manager.cancelTask(req.params.id, 'cancelled through the API')),
    }),
  );

  app.post<{ Params: { id: string } }>(
    '/api/tasks/:id/retry',
    { preHandler: guard('write') },
    async (req) => ({
      task: publicTask(await manager.retryTask(req.params.id)),
    }),
  );

  app.get<{ Params: { id: string; name: string } }>(
    '/api/tasks/:id/artifacts/:name',
    { preHandler: guard('read') },
    async (req, reply) => {
      const a = await manager.artifacts.get(req.params.id, req.params.name);
      void reply.header('content-type', a.contentType).header('content-length', a.data.length);
      void reply.header('content-disposition', `inline; filename="${a.name.replace(/["\\\r\n]/g, '_')}"`);
      return reply.send(a.data);
    },
  );

  app.get('/api/workers', { preHandler: guard('read') }, async () => ({
    workers: await manager.getWorkerStatus(),
  }));

  app.post('/api/workers', { preHandler: guard('write') }, async (req, reply) => {
    const body = parse(RegisterBody, req.body ?? {}, 'worker registration');
    const result = await manager.registerWorker({
      endpoint: body.endpoint,
      ...(body.workerType ? { workerType: body.workerType } : {}),
      source: 'announce',
    });
    return reply.code(202).send(result);
  });

  app.post<{ Params: { id: string } }>(
    '/api/workers/:id/drain',
    { preHandler: guard('write') },
    async (req) => {
      await manager.drainWorker(req.params.id);
      return { ok: true };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/workers/:id/resume',
    { preHandler: guard('write') },
    async (req) => {
      await manager.resumeWorker(req.params.id);
      return { ok: true };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/workers/:id/restart',
    { preHandler: guard('write') },
    async (req) => ({
      ok: await manager.restartWorker(req.params.id),
    }),
  );

  app.get('/api/status', { preHandler: guard('read') }, async () => {
    const workers = await manager.getWorkerStatus();
    const byCapability: Record<string, number> = {};
    for (const caps of manager.capabilitiesByType().values()) {
      for (const c of caps) byCapability[c] = await manager.queue.depth(c);
    }
    return {
      managerId: manager.id,
      workers,
      types: summarize(workers),
      queue: { depth: await manager.queue.depth(), byCapability },
    };
  });

  // Filled by `fleet up`'s autoscaler and supervisor; empty on a manager that scales nothing.
  app.get('/api/scaling', { preHandler: guard('read') }, async () => ({
    decisions: manager.operatorEvents.recentDecisions(),
    latest: manager.operatorEvents.latestDecisions(),
  }));

  app.get('/api/alerts', { preHandler: guard('read') }, async () => ({
    active: manager.operatorEvents.activeAlerts(),
    recent: manager.operatorEvents.recentAlerts(),
  }));

  registerCatalogRoutes(app, manager, guard('read'));
  new McpGateway(manager, { authorize: (req) => authorize(options, req.raw, 'write') }).register(app);

  for (const plugin of options.plugins ?? []) await plugin(app);

  attachEventStream(app, manager, options);
  return app;
}

/**
 * `GET /api/events` upgraded to a WebSocket: task, worker and progress events as JSON lines.
 * `?taskId=` narrows to one task; `?types=task,worker,progress` picks kinds (`scaling` and `alert` on request:
 * a decision per worker type per second would drown the default stream). A slow client is cut off rather
 * than buffered without bound.
 */
function attachEventStream(app: FastifyInstance, manager: WorkerManager, options: ApiServerOptions): void {
  attachReadSocket(app, '/api/events', options, 64 * 1024, (ws, url) =>
    streamEvents(ws, manager, url.searchParams),
  );
}

/**
 * Serves a WebSocket at `path` on the API's server for readers: the token is checked at the upgrade (a refusal
 * is a 401 with the typed error as JSON), and every socket is cut when the server closes.
 */
export function attachReadSocket(
  app: FastifyInstance,
  path: string,
  auth: Pick<ApiServerOptions, 'token' | 'readToken'>,
  maxPayload: number,
  onSocket: (ws: WebSocket, url: URL) => void,
): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== path) return;
    try {
      authorize(auth, req, 'read');
    } catch (err) {
      const e = err as FleetError;
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify({ error: e.toJSON() })}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onSocket(ws, url));
  });
  // preClose, not onClose: the HTTP server's close waits for every socket, upgraded ones included, so
  // cutting them only after it would leave `fleet up` hanging on SIGTERM while anyone watches events.
  app.addHook('preClose', async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  return wss;
}

/**
 * A graceful stop releases the socket with the typed error (one `error` frame, then close 1001), so a client
 * learns why and can reconnect elsewhere instead of hanging on a server that is going away.
 */
export function releaseOnShutdown(ws: WebSocket, manager: WorkerManager): void {
  const release = () => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ type: 'error', error: manager.shutdownError().toJSON() }), () =>
      ws.close(1001, 'manager shutting down'),
    );
  };
  const unsubscribe = manager.onShutdown(release);
  ws.once('close', unsubscribe);
}

function streamEvents(ws: WebSocket, manager: WorkerManager, params: URLSearchParams): void {
  const taskId = params.get('taskId') ?? undefined;
  const types = new Set((params.get('types') ?? 'task,worker,progress').split(','));
  const unsubscribe = manager.subscribe((event: ManagerEvent) => {
    if (!types.has(event.type)) return;
    if (taskId) {
      const id =
        event.type === 'task'
          ? event.event.task.id
          : event.type === 'progress'
            ? event.progress.taskId
            : undefined;
      if (id !== taskId) return;
    }
    if (ws.bufferedAmount > 8 * 1024 * 1024) {
      ws.close(1013, 'client too slow');
      return;
    }
    const out =
      event.type === 'task'
        ? { type: 'task', kind: event.event.kind, task: publicTask(event.event.task) }
        : event;
    ws.send(JSON.stringify(out));
  });
  ws.on('close', unsubscribe);
  ws.on('error', () => undefined);
  ws.send(JSON.stringify({ type: 'hello', managerId: manager.id }));
  releaseOnShutdown(ws, manager);
}
