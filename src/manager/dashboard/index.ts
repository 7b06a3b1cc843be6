/**
 * The live dashboard at `/dashboard`, registered on the manager's own HTTP server (no second server, no
 * CDN: every asset is a file of `static/`, served from memory).
 *
 *   GET  /dashboard/                 the page (open: it holds no data; the data needs the token)
 *   GET  /dashboard/assets/<file>    its ES modules and CSS
 *   GET  /dashboard/api/session      which access the presented token grants (read)
 *   GET  /dashboard/api/tasks        task rows from the aggregator, ?state=&type=&limit= (read)
 *   GET  /dashboard/api/tasks/:id    one task, summarised for the detail view, with its progress log (read)
 *   WS   /dashboard/live             one snapshot per second; the client may send {type:'filter',...} (read)
 *
 * Actions (drain, restart, cancel, retry) go through the public `/api` routes, so the dashboard can do
 * nothing the API would refuse, and the read-only token is refused there with its own message.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { FleetError } from '../../protocol/errors.js';
import { zodToFleetError } from '../../protocol/zod-error.js';
import { authorize } from '../http/auth.js';
import { attachReadSocket, releaseOnShutdown } from '../http/event-stream.js';
import { publicTask } from '../http/views.js';
import { TASK_STATES, type Clock, type WorkerManager } from '../public.js';
import { DashboardAggregator, type Snapshot, type TaskListFilter } from './aggregator.js';

export { DashboardAggregator } from './aggregator.js';
export type {
  Alert,
  DashboardSource,
  SeriesPoint,
  Snapshot,
  TaskRow,
  TypeRow,
  WorkerRow,
} from './aggregator.js';

export interface DashboardOptions {
  token?: string;
  readToken?: string;
  /** @default the manager's clock */
  clock?: Clock;
  /** Snapshot period. @default 1000 */
  tickMs?: number;
  /** Where the static files are. @default `static/` next to this module, else the source tree's */
  staticDir?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.png': 'image/png',
};

/** The page may load nothing from elsewhere: this is what makes "works offline" checkable. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const PREVIEW_CHARS = 2000;
const SLOW_CLIENT_BYTES = 1024 * 1024;

const FilterSchema = z.object({
  state: z.enum([...TASK_STATES, 'active']).optional(),
  type: z.string().min(1).max(100).optional(),
  limit: z.coerce.number().int().positive().max(500).optional(),
});

const ClientMessageSchema = z.object({ type: z.literal('filter') }).extend(FilterSchema.shape);

function staticCandidates(): string[] {
  return [
    fileURLToPath(new URL('./static/', import.meta.url)),
    // tsc compiles only .ts into dist/; running from dist, the files are still in the source tree.
    fileURLToPath(new URL('../../../src/manager/dashboard/static/', import.meta.url)),
  ];
}

function loadStatic(dir: string | undefined): { files: Map<string, Buffer>; dir: string | undefined } {
  const found = dir ?? staticCandidates().find((d) => existsSync(join(d, 'index.html')));
  const files = new Map<string, Buffer>();
  if (!found || !existsSync(found)) return { files, dir: found };
  for (const name of readdirSync(found)) {
    if (CONTENT_TYPES[extname(name)]) files.set(name, readFileSync(join(found, name)));
  }
  return { files, dir: found };
}

function preview(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value, null, 2) ?? '(not JSON)');
  } catch {
    text = '(not serialisable)';
  }
  return text.length > PREVIEW_CHARS
    ? `${text.slice(0, PREVIEW_CHARS)}\n… (${text.length} characters in all)`
    : text;
}

function parseFilter(raw: unknown): TaskListFilter {
  const r = FilterSchema.safeParse(raw);
  if (!r.success) throw zodToFleetError(r.error, 'invalid_task', 'invalid filter:');
  return {
    ...(r.data.state ? { state: r.data.state } : {}),
    ...(r.data.type ? { type: r.data.type } : {}),
    ...(r.data.limit ? { limit: r.data.limit } : {}),
  };
}

/** The dashboard as a plugin for `createApiServer(manager, { plugins: [dashboardPlugin(manager, opts)] })`. */
export function dashboardPlugin(
  manager: WorkerManager,
  options: DashboardOptions = {},
): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    const auth = {
      ...(options.token ? { token: options.token } : {}),
      ...(options.readToken ? { readToken: options.readToken } : {}),
    };
    const read = async (req: FastifyRequest) => authorize(auth, req.raw, 'read');
    const aggregator = new DashboardAggregator(manager, {
      clock: options.clock ?? manager.clock,
      ...(options.tickMs ? { tickMs: options.tickMs } : {}),
      onError: (err) => manager.logger.warn({ err }, 'dashboard aggregation failed'),
    });
    const assets = loadStatic(options.staticDir);
    if (!assets.files.has('index.html')) {
      manager.logger.warn(
        { dir: assets.dir },
        'dashboard static files not found; /dashboard will answer 404',
      );
    }

    const sendAsset = (name: string, reply: FastifyReply) => {
      const body = assets.files.get(name);
      if (!body) throw new FleetError('not_found', `no dashboard asset ${name}`);
      return reply
        .header('content-type', CONTENT_TYPES[extname(name)] ?? 'application/octet-stream')
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(body);
    };

    app.get('/dashboard', async (req, reply) => {
      const q = req.url.indexOf('?');
      return reply.redirect(`/dashboard/${q >= 0 ? req.url.slice(q) : ''}`, 302);
    });
    app.get('/dashboard/', async (_req, reply) => sendAsset('index.html', reply));
    app.get<{ Params: { name: string } }>('/dashboard/assets/:name', async (req, reply) =>
      sendAsset(req.params.name, reply),
    );

    app.get('/dashboard/api/session', { preHandler: read }, async (req) => {
      let access: 'open' | 'write' | 'read' = 'open';
      if (auth.token) {
        try {
          authorize(auth, req.raw, 'write');
          access = 'write';
        } catch {
          access = 'read';
        }
      }
      return { managerId: manager.id, access, tickMs: options.tickMs ?? 1000 };
    });

    app.get('/dashboard/api/tasks', { preHandler: read }, async (req) => ({
      tasks: aggregator.tasks(parseFilter(req.query)),
    }));

    app.get<{ Params: { id: string } }>('/dashboard/api/tasks/:id', { preHandler: read }, async (req) => {
      const task = await manager.getTask(req.params.id);
      const pub = publicTask(task);
      const start = task.startedAt ?? task.attempts[task.attempts.length - 1]?.startedAt;
      return {
        task: {
          id: task.id,
          capability: task.capability,
          state: task.state,
          priority: task.priority,
          attempt: task.attempt,
          maxAttempts: task.maxAttempts,
          workerId: task.workerId,
          createdAt: task.createdAt,
          startedAt: start,
          finishedAt: task.finishedAt,
          durationMs:
            start !== undefined && task.finishedAt !== undefined ? task.finishedAt - start : undefined,
          payload: preview(task.payload),
          output: preview(task.output),
          error: task.error,
          progress: task.progress,
          attempts: pub.attempts,
          artifacts: pub.artifacts ?? [],
          progressLog: aggregator.progressLog(task.id),
        },
      };
    });

    attachLive(app, aggregator, auth, manager);
    aggregator.start();
    app.addHook('onClose', async () => aggregator.stop());
  };
}

interface LiveClient {
  ws: WebSocket;
  filter: TaskListFilter;
}

function attachLive(
  app: FastifyInstance,
  aggregator: DashboardAggregator,
  auth: { token?: string; readToken?: string },
  manager: WorkerManager,
): void {
  const clients = new Set<LiveClient>();

  const welcome = async (ws: WebSocket) => {
    const client: LiveClient = { ws, filter: {} };
    clients.add(client);
    releaseOnShutdown(ws, manager);
    ws.on('close', () => clients.delete(client));
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new FleetError('invalid_task', 'the dashboard socket takes JSON text');
        let parsed: unknown;
        try {
          parsed = JSON.parse((data as Buffer).toString('utf8'));
        } catch {
          throw new FleetError('invalid_task', 'message is not JSON');
        }
        const r = ClientMessageSchema.safeParse(parsed);
        if (!r.success)
          throw new FleetError('invalid_task', 'expected {"type":"filter","state"?,"type"?,"limit"?}');
        const { type: _t, ...filter } = r.data;
        client.filter = parseFilter(filter);
        ws.send(JSON.stringify({ type: 'tasks', tasks: aggregator.tasks(client.filter) }));
      } catch (err) {
        const e = err instanceof FleetError ? err : new FleetError('invalid_task', String(err));
        ws.send(JSON.stringify({ type: 'error', error: e.toJSON() }));
      }
    });
    try {
      const snapshot = await aggregator.current();
      if (ws.readyState !== ws.OPEN) return;
      ws.send(
        JSON.stringify({
          type: 'init',
          managerId: manager.id,
          history: aggregator.series(),
          snapshot,
          tasks: aggregator.tasks(client.filter),
        }),
      );
    } catch (err) {
      manager.logger.warn({ err }, 'dashboard: first snapshot failed');
    }
  };

  const broadcast = (snapshot: Snapshot) => {
    // One serialisation of the shared part; the task list differs only by filter.
    const shared = JSON.stringify(snapshot);
    const byFilter = new Map<string, string>();
    for (const c of clients) {
      if (c.ws.readyState !== c.ws.OPEN) continue;
      // A slow browser skips snapshots (the next one supersedes them) instead of being buffered for.
      if (c.ws.bufferedAmount > SLOW_CLIENT_BYTES) continue;
      const key = `${c.filter.state ?? ''}|${c.filter.type ?? ''}|${c.filter.limit ?? ''}`;
      let tasks = byFilter.get(key);
      if (tasks === undefined) {
        tasks = JSON.stringify(aggregator.tasks(c.filter));
        byFilter.set(key, tasks);
      }
      c.ws.send(`{"type":"tick","snapshot":${shared},"tasks":${tasks}}`);
    }
  };
  const unsubscribe = aggregator.onSnapshot(broadcast);

  attachReadSocket(app, '/dashboard/live', auth, 4096, (ws) => void welcome(ws));
  app.addHook('onClose', async () => unsubscribe());
}
