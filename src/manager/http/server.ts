/**
 * The manager's HTTP + WebSocket API (fastify): tasks, workers, status, a live event stream, /metrics and
 * /health. Every error leaves as `{ error: { code, message, retryable, details? } }` with the code's HTTP
 * status, so clients match on codes, never on text.
 *
 * Auth (http/auth.ts), the event stream (http/event-stream.ts) and how records are shown (http/views.ts) are
 * shared modules; this file is the routes.
 */
import http from 'node:http';
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { FleetError } from '../../protocol/errors.js';
import type { WorkerManager } from '../manager.js';
import { TASK_STATES, type TaskState } from '../queue/task.js';
import { BatchBody, ListQuery, RegisterBody, WaitQuery, parseInput as parse } from './api-schemas.js';
import { authorize, type Access, type AuthOptions } from './auth.js';
import { attachClientChannel } from './client-channel.js';
import { errorReply } from './error-reply.js';
import { attachEventStream } from './event-stream.js';
import { registerOpenApiRoute, type OpenApiOptions } from './openapi.js';
import {
  SUBMIT_PATH,
  leanSubmitRoute,
  parseWaitQuery,
  submitAnswer,
  type JsonBodyParser,
  type SubmitAnswer,
} from './submit-route.js';
import { publicTask, summarize } from './views.js';
import { registerCatalogRoutes } from '../catalog/routes.js';
import { McpGateway } from '../mcp/gateway.js';

export interface ApiServerOptions extends AuthOptions {
  bodyLimitBytes?: number;
  /** Requests one client channel connection (`/api/channel`) may have in flight. */
  channelMaxInFlight?: number;
  /** Extra routes (the dashboard) registered on the same server. */
  plugins?: ((app: FastifyInstance) => void | Promise<void>)[];
  /** What `GET /api/openapi.json` adds to the route table (the capability catalog's schemas). */
  openapi?: OpenApiOptions;
  /**
   * Plain `POST /api/tasks` requests bypass fastify (submit-route.ts); they answer the same either way.
   * Off only to compare the two paths (tests, benchmarks). @default true
   */
  leanSubmitRoute?: boolean;
}

/** fastify's defaults, named because the lean submit route parses JSON with the same rules. */
const PROTO_POISONING = 'error';
const CONSTRUCTOR_POISONING = 'error';

/**
 * The HTTP/1 server fastify would make (its options, applied as fastify applies them), with `first` given
 * each request before fastify: it returns true for a request it answers itself.
 */
function serverWith(first: {
  handle?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
}): (handler: http.RequestListener, opts: FastifyServerOptions) => http.Server {
  return (handler, opts) => {
    // No `http` options are passed to fastify here, so none are passed on.
    const server = http.createServer((req, res) => {
      if (!first.handle?.(req, res)) handler(req, res);
    });
    server.keepAliveTimeout = opts.keepAliveTimeout!;
    server.requestTimeout = opts.requestTimeout!;
    server.setTimeout(opts.connectionTimeout);
    if (opts.maxRequestsPerSocket! > 0) server.maxRequestsPerSocket = opts.maxRequestsPerSocket!;
    return server;
  };
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

export async function createApiServer(
  manager: WorkerManager,
  options: ApiServerOptions = {},
): Promise<FastifyInstance> {
  // return503OnClosing off: a request that arrives while the server closes still reaches the routes, which
  // answer the typed `shutting_down` (fastify's own 503 would carry no code a client can match).
  const bodyLimit = options.bodyLimitBytes ?? 16 * 1024 * 1024;
  const first: { handle?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean } = {};
  const app = Fastify({
    logger: false,
    bodyLimit,
    return503OnClosing: false,
    onProtoPoisoning: PROTO_POISONING,
    onConstructorPoisoning: CONSTRUCTOR_POISONING,
    serverFactory: serverWith(first),
  });
  if (options.leanSubmitRoute ?? true) {
    // The first preClose hook: fastify marks itself closing just before the hooks run.
    let closing = false;
    app.addHook('preClose', (done) => {
      closing = true;
      done();
    });
    first.handle = leanSubmitRoute(manager, {
      ...(options.token ? { token: options.token } : {}),
      ...(options.readToken ? { readToken: options.readToken } : {}),
      bodyLimit,
      parseJson: app.getDefaultJsonParser(PROTO_POISONING, CONSTRUCTOR_POISONING) as JsonBodyParser,
      closing: () => closing,
    });
  }
  const guard = (access: Access) => async (req: FastifyRequest) => authorize(options, req.raw, access);

  app.setErrorHandler((err: unknown, _req, reply) => {
    const e = errorReply(err);
    void reply.code(e.status).send(e.body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({
      error: new FleetError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON(),
    });
  });

  registerOpenApiRoute(app, guard('read'), {
    // By default the document describes the payloads the fleet's workers describe now (the catalog).
    capabilities: () =>
      manager.catalog
        .entries()
        .filter((e) => e.payloadSchema !== undefined)
        .map((e) => ({
          name: e.capability,
          description: e.description,
          payloadSchema: e.payloadSchema!,
          ...(e.resultSchema ? { resultSchema: e.resultSchema } : {}),
        })),
    ...options.openapi,
  });

  app.get('/health', async () => ({ status: 'ok', managerId: manager.id, ...(await manager.health()) }));

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', manager.metrics.registry.contentType);
    return manager.metrics.registry.metrics();
  });

  // Plain requests to this route are answered in front of fastify (submit-route.ts), with the same logic.
  app.post(SUBMIT_PATH, { preHandler: guard('write') }, async (req, reply) => {
    let answer: SubmitAnswer | undefined;
    await submitAnswer(manager, parseWaitQuery(req.query), req.body, (a) => (answer = a));
    return reply.code(answer!.status).send(answer!.body);
  });

  // `::` is a literal colon in fastify's router: the path is /api/tasks:batch.
  app.post('/api/tasks::batch', { preHandler: guard('write') }, async (req, reply) => {
    const body = parse(BatchBody, req.body ?? {}, 'batch');
    const results = await manager.submitMany(body.tasks);
    return reply
      .code(results.some((r) => r.created) ? 201 : 200)
      .send({ tasks: results.map(({ task, created }) => ({ task: publicTask(task), created })) });
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
      for (const c of caps) byCapability[c] = await manager.queueDepth(c);
    }
    return {
      managerId: manager.id,
      workers,
      types: summarize(workers),
      queue: { depth: await manager.queueDepth(), byCapability },
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
  attachClientChannel(app, manager, {
    ...options,
    maxFrameBytes: options.bodyLimitBytes ?? 16 * 1024 * 1024,
    ...(options.channelMaxInFlight !== undefined ? { maxInFlight: options.channelMaxInFlight } : {}),
  });
  return app;
}
