/**
 * The MCP gateway (issue 18): the fleet's capabilities as the tools of one MCP server at `POST/GET/DELETE /mcp`
 * on the manager (Streamable HTTP, behind the manager's operator token). `fleet mcp` puts a stdio door in
 * front of the same endpoint.
 *
 * - Tools come from the capability catalog: its payload schema is the inputSchema, its result schema the
 *   outputSchema, its flags the annotations. A catalog change sends `notifications/tools/list_changed` to
 *   every session.
 * - A call is a task: submitted through the manager's own submit path (so the payload check, the queue bound
 *   and shutdown apply), its progress relayed as MCP progress (python's stdout as it streams), an MCP
 *   cancellation cancels it, and its failure is a tool error carrying Fleet's code.
 * - Each MCP session has its own python-sandbox session (`mcp-<session id>`) for capabilities served by
 *   python-sandbox workers, so variables and files persist across one agent's calls and never leak into
 *   another's; it is closed with the MCP session (or ends by the sandbox's idle TTL).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { FleetError, toFleetError } from '../../protocol/errors.js';
import { CapabilityCatalog, type CatalogEntry } from '../catalog/capability-catalog.js';
import type { ManagerEvent, WorkerManager } from '../manager.js';
import {
  DEFAULT_SIZE_POLICY,
  artifactUri,
  readArtifact,
  taskResult,
  toolError,
  type SizePolicy,
} from './tool-results.js';
import { McpHttpTransport } from './http-transport.js';
import { WorkerToolProxy } from './worker-tools.js';

export const MCP_PATH = '/mcp';
const PYTHON_WORKER_TYPE = 'python-sandbox';

export interface McpGatewayOptions {
  /** Throws `unauthorized` when the request may not act (the API's own check). */
  authorize: (req: FastifyRequest) => void;
  maxSessions?: number;
  /** An MCP session idle this long is closed (and its python session with it). */
  sessionIdleMs?: number;
  sizePolicy?: SizePolicy;
  version?: string;
}

interface Session {
  id: string;
  server: Server;
  transport: McpHttpTransport;
  lastUsed: number;
  /** Set once a task of this session ran on a python-sandbox worker: closing the session then ends it there. */
  pythonSessionUsed: boolean;
  /** Artifacts this session's tasks returned, newest last (bounded), for resources/list. */
  artifacts: { uri: string; name: string; mimeType: string }[];
  closed: boolean;
}

/** The MCP JSON Schema dialect default is 2020-12; a `$schema` key only trips clients on older validators. */
function forMcp(schema: Record<string, unknown> | undefined): Tool['inputSchema'] | undefined {
  if (!schema) return undefined;
  const { $schema: _dialect, ...rest } = schema;
  return rest as Tool['inputSchema'];
}

export function toolOf(entry: CatalogEntry): Tool {
  const input = forMcp(entry.payloadSchema) ?? { type: 'object' };
  const output = forMcp(entry.resultSchema);
  return {
    name: entry.capability,
    title: entry.capability,
    description: entry.description || `Runs a "${entry.capability}" task on the fleet.`,
    // MCP needs an object schema at the top; a payload that is not an object cannot be a tool's arguments.
    inputSchema: input.type === 'object' ? input : { type: 'object' },
    ...(output && output.type === 'object' ? { outputSchema: output } : {}),
    annotations: {
      title: entry.capability,
      readOnlyHint: entry.readOnly,
      idempotentHint: entry.idempotent,
      destructiveHint: false,
      // Browsers reach the web; python may too when its network policy allows.
      openWorldHint: !entry.readOnly || entry.workerTypes.includes('browser-worker'),
    },
    _meta: {
      fleet: { workerTypes: entry.workerTypes, workers: entry.workers, artifactTypes: entry.artifactTypes },
    },
  };
}

export class McpGateway {
  private readonly sessions = new Map<string, Session>();
  private readonly maxSessions: number;
  private readonly idleMs: number;
  private readonly policy: SizePolicy;
  private readonly unsubscribe: () => void;
  private readonly sweeper: NodeJS.Timeout;
  private readonly proxy: WorkerToolProxy;

  constructor(
    private readonly manager: WorkerManager,
    private readonly options: McpGatewayOptions,
  ) {
    this.maxSessions = options.maxSessions ?? 256;
    this.idleMs = options.sessionIdleMs ?? 30 * 60_000;
    this.policy = options.sizePolicy ?? DEFAULT_SIZE_POLICY;
    this.proxy = new WorkerToolProxy(manager);
    this.unsubscribe = manager.subscribe(
      (e: ManagerEvent) => {
        if (e.type !== 'catalog') return;
        for (const s of this.sessions.values()) void s.server.sendToolListChanged().catch(() => undefined);
      },
      { types: ['catalog'] },
    );
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, this.idleMs)).unref();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  register(app: FastifyInstance): void {
    const handle = async (req: FastifyRequest, reply: FastifyReply) => {
      this.options.authorize(req);
      const header = req.headers['mcp-session-id'];
      const sessionId = Array.isArray(header) ? header[0] : header;
      let session = sessionId ? this.sessions.get(sessionId) : undefined;
      if (sessionId && !session) {
        throw new FleetError(
          'not_found',
          `no MCP session ${sessionId.slice(0, 100)} (it ended or expired); initialize a new one`,
        );
      }
      if (!session) {
        if (req.method !== 'POST')
          throw new FleetError('not_found', 'no MCP session: POST an initialize request first');
        if (this.manager.isShuttingDown) throw this.manager.shutdownError();
        if (this.sessions.size >= this.maxSessions) {
          throw new FleetError(
            'queue_full',
            `the gateway holds ${this.maxSessions} MCP sessions; close one or retry later`,
          );
        }
        session = this.newSession();
      }
      session.lastUsed = Date.now();
      reply.hijack();
      await session.transport.handleRequest(req.raw, reply.raw, req.body);
    };
    app.post(MCP_PATH, handle);
    app.get(MCP_PATH, handle);
    app.delete(MCP_PATH, handle);
    app.addHook('preClose', async () => this.close());
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.unsubscribe();
    this.proxy.close();
    await Promise.all([...this.sessions.values()].map((s) => this.endSession(s, 'gateway closing')));
  }

  private newSession(): Session {
    const server = new Server(
      { name: 'fleet', version: this.options.version ?? '0.1.0' },
      {
        capabilities: { tools: { listChanged: true }, resources: {} },
        instructions:
          'Each tool runs a task on a Fleet worker. Python tools share one sandbox session per MCP session: variables and files persist across calls until the session ends.',
      },
    );
    const session: Session = {
      id: '',
      server,
      transport: undefined as unknown as McpHttpTransport,
      lastUsed: Date.now(),
      pythonSessionUsed: false,
      artifacts: [],
      closed: false,
    };
    session.transport = new McpHttpTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        session.id = id;
        this.sessions.set(id, session);
      },
      onsessionclosed: () => void this.endSession(session, 'client ended the session'),
    });
    session.transport.onclose = () => void this.endSession(session, 'transport closed');
    this.handle(session);
    void server.connect(session.transport);
    return session;
  }

  private handle(session: Session): void {
    const { server } = session;
    server.setRequestHandler(ListToolsRequestSchema, async () => {
      const tools = this.manager.catalog.entries().map(toolOf);
      return { tools: [...tools, ...(await this.proxy.list(new Set(tools.map((t) => t.name))))] };
    });
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      session.lastUsed = Date.now();
      try {
        return await this.callTool(session, request.params.name, request.params.arguments, extra);
      } catch (err) {
        return toolError(toFleetError(err));
      }
    });
    server.setRequestHandler(ListResourcesRequestSchema, () => ({
      resources: session.artifacts.map((a) => ({ uri: a.uri, name: a.name, mimeType: a.mimeType })),
    }));
    server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
      try {
        return await readArtifact(request.params.uri, this.manager.artifacts, this.policy);
      } catch (err) {
        // resources/read has no error result: a JSON-RPC error whose message carries Fleet's code.
        const e = toFleetError(err);
        throw Object.assign(new Error(`${e.code}: ${e.message}`), { code: -32002, data: e.toJSON() });
      }
    });
  }

  private async callTool(
    session: Session,
    name: string,
    args: Record<string, unknown> | undefined,
    extra: {
      signal: AbortSignal;
      _meta?: { progressToken?: string | number };
      sendNotification: (n: {
        method: 'notifications/progress';
        params: { progressToken: string | number; progress: number; total?: number; message?: string };
      }) => Promise<void>;
    },
  ): Promise<CallToolResult> {
    const entry = this.manager.catalog.entry(name);
    const token = extra._meta?.progressToken;
    if (!entry) {
      const proxied = await this.proxy.call(name, args, {
        signal: extra.signal,
        ...(token !== undefined
          ? {
              onprogress: (p) =>
                void extra
                  .sendNotification({
                    method: 'notifications/progress',
                    params: { ...p, progressToken: token },
                  })
                  .catch(() => undefined),
            }
          : {}),
      });
      if (proxied) return proxied;
      const capabilities = this.manager.catalog.entries().map((e) => e.capability);
      const tools = await this.proxy.list(new Set(capabilities));
      throw CapabilityCatalog.unknownCapability(name, [...capabilities, ...tools.map((t) => t.name)]);
    }
    const taskId = randomUUID();
    const python = entry.workerTypes.includes(PYTHON_WORKER_TYPE);
    let step = 0;
    let stopProgress = () => undefined as void;
    if (token !== undefined) {
      stopProgress = this.manager.subscribe((e) => {
        if (e.type !== 'progress' || e.progress.taskId !== taskId) return;
        const p = e.progress;
        // MCP progress must increase: percent when the worker reports one, else a counter of updates.
        step = p.percent !== undefined ? Math.max(step + 0.001, p.percent) : step + 1;
        const message = p.log ? p.log.data : p.message;
        void extra
          .sendNotification({
            method: 'notifications/progress',
            params: {
              progressToken: token,
              progress: step,
              ...(p.percent !== undefined ? { total: 100 } : {}),
              ...(message !== undefined ? { message: message.slice(0, 10_000) } : {}),
            },
          })
          .catch(() => undefined);
      });
    }
    const onAbort = () =>
      void this.manager.cancelTask(taskId, 'cancelled by the MCP client').catch(() => undefined);
    extra.signal.addEventListener('abort', onAbort, { once: true });
    try {
      // Cancelled before it started (the cancellation came in the same batch): nothing is submitted.
      if (extra.signal.aborted) throw new FleetError('cancelled', 'the MCP client cancelled the call');
      if (python) session.pythonSessionUsed = true;
      const { task } = await this.manager.submitAndWait({
        id: taskId,
        capability: name,
        payload: args ?? {},
        ...(python ? { sessionId: this.pythonSessionOf(session) } : {}),
      });
      for (const a of task.artifacts ?? []) {
        session.artifacts.push({ uri: artifactUri(task.id, a.name), name: a.name, mimeType: a.contentType });
        if (session.artifacts.length > 100) session.artifacts.shift();
      }
      return await taskResult(
        task,
        this.manager.artifacts,
        this.policy,
        entry.resultSchema?.type === 'object',
      );
    } finally {
      extra.signal.removeEventListener('abort', onAbort);
      stopProgress();
    }
  }

  private pythonSessionOf(session: Session): string {
    return `mcp-${session.id}`;
  }

  private async endSession(session: Session, why: string): Promise<void> {
    if (session.closed) return;
    session.closed = true;
    this.sessions.delete(session.id);
    if (session.pythonSessionUsed && !this.manager.isShuttingDown) {
      // Ends the sandbox now rather than at its idle TTL; best effort (the TTL is the backstop).
      await this.manager
        .submit({
          capability: 'python-execution',
          payload: { closeSession: true },
          sessionId: this.pythonSessionOf(session),
          maxAttempts: 1,
        })
        .catch((err: unknown) =>
          this.manager.logger.debug({ err, session: session.id }, 'could not close the python session'),
        );
    }
    this.manager.logger.debug({ session: session.id, why }, 'MCP session ended');
    await session.transport.close().catch(() => undefined);
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of [...this.sessions.values()]) {
      if (now - s.lastUsed > this.idleMs) void this.endSession(s, 'idle');
    }
  }
}
