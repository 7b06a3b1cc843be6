/**
 * `WorkerServer`: one worker process's network face. On one port it serves
 *   - `/ws`       the task protocol (the manager dials in; see docs/protocol.md),
 *   - `GET /health` liveness + readiness + current load (200 when ready, even at capacity; 503 otherwise),
 *   - `GET /metrics` Prometheus, from a registry owned by this server,
 *   - whatever routes the kind adds (figma: `POST /mcp`).
 * Everything about tasks lives in `WorkerRuntime`; this file is sockets, HTTP and lifecycle.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { WorkerSectionConfig } from '../../config/schema.js';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_INBOUND_FRAME_BYTES } from '../../protocol/codec.js';
import { FleetError } from '../../protocol/errors.js';
import { workerProof } from '../../protocol/worker-proof.js';
import {
  ManagerToWorkerSchema,
  NONCE_HEADER,
  type ManagerToWorker,
  type WorkerToManager,
} from '../../protocol/messages.js';
import { CLOSE_CODES } from '../../protocol/transport.js';
import { WebSocketTransport } from '../../protocol/ws-transport.js';
import { Announcer, DEFAULT_ANNOUNCE_INTERVAL_MS } from './announce.js';
import { createLogger } from './logger.js';
import { WorkerMetrics } from './metrics.js';
import type { ProgressCoalescerOptions } from './progress-coalescer.js';
import { stableWorkerId } from './worker-id.js';
import { WorkerRuntime } from './worker-runtime.js';
import type { WorkerKind } from './worker-kind.js';

export interface WorkerServerOptions {
  kind: WorkerKind;
  config: WorkerSectionConfig;
  /** Id reported in hello, /health and metrics. @default `<name>-<hostname>-<port>` (worker-id.ts) */
  workerId?: string;
  /** When set, every WebSocket connection must present it (`Authorization: Bearer`, or `?token=`). */
  token?: string;
  /** Manager base URL (http[s]://host:port) to announce this worker to. */
  managerUrl?: string;
  /** Host put into the announced endpoint. @default config.host, or the machine's hostname when that is a wildcard */
  advertiseHost?: string;
  /** Cap on the frames this worker sends (results carry artifacts). @default DEFAULT_MAX_FRAME_BYTES (32 MiB) */
  maxFrameBytes?: number;
  /**
   * Cap on the frames it reads. A manager sends only task.assign (a payload bounded by the manager's
   * `submission.max_bytes`) and small control frames, so anything near 32 MiB is an abuse; ws stops reading
   * a frame a little past this cap and closes the socket, so a peer cannot make the worker hold more.
   * @default DEFAULT_MAX_INBOUND_FRAME_BYTES (9 MiB)
   */
  maxInboundFrameBytes?: number;
  /** Manager connections open at once; more are refused with 503. @default 16 */
  maxConnections?: number;
  logger?: Logger;
  /** How long `drain()` waits for running tasks. @default 30_000 */
  drainTimeoutMs?: number;
  /** Upper bound on the heartbeat period; a shorter `welcome.heartbeatIntervalMs` wins. */
  heartbeatIntervalMs?: number;
  /** @default 10_000 */
  announceIntervalMs?: number;
  /** Progress coalescing (flush period, per-task byte cap). */
  progress?: ProgressCoalescerOptions;
  /**
   * WebSocket ping period. A manager that vanished without closing its socket (host down, cable cut) misses
   * a pong and is dropped, which aborts its tasks and frees their slots. 0 turns it off. @default 15_000
   */
  pingIntervalMs?: number;
}

export interface HealthBody {
  status: 'ok' | 'busy' | 'draining' | 'not_ready';
  live: boolean;
  ready: boolean;
  workerId: string;
  workerType: string;
  version: string;
  capabilities: string[];
  load: { inFlight: number; maxConcurrency: number; utilization: number };
  uptimeSec: number;
  connections: number;
  info: Record<string, unknown> | undefined;
}

type Lifecycle = 'new' | 'starting' | 'started' | 'stopping' | 'stopped';

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '']);

export class WorkerServer {
  readonly workerId: string;
  readonly metrics: WorkerMetrics;
  private readonly logger: Logger;
  private readonly runtime: WorkerRuntime;
  private readonly app: FastifyInstance;
  private readonly wss: WebSocketServer;
  private readonly maxFrameBytes: number;
  private readonly maxInboundFrameBytes: number;
  private readonly tokenDigest: Buffer | undefined;
  private readonly token: string | undefined;
  private readonly announcer: Announcer | undefined;
  private state: Lifecycle = 'new';
  private boundPort = 0;
  private startedAt = 0;
  private stopping: Promise<void> | undefined;
  private kindStarted = false;
  private pinger: NodeJS.Timeout | undefined;
  /** Sockets that answered the last ping. */
  private readonly alive = new WeakSet<WebSocket>();

  constructor(private readonly options: WorkerServerOptions) {
    const { kind, config } = options;
    this.workerId = options.workerId ?? stableWorkerId(config.name || kind.type, hostname(), config.port);
    this.logger = (options.logger ?? createLogger(`fleet-worker-${kind.type}`)).child({
      workerId: this.workerId,
    });
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxInboundFrameBytes = options.maxInboundFrameBytes ?? DEFAULT_MAX_INBOUND_FRAME_BYTES;
    this.tokenDigest = options.token ? digest(options.token) : undefined;
    this.token = options.token;
    this.metrics = new WorkerMetrics({ workerType: kind.type, workerId: this.workerId });
    this.runtime = new WorkerRuntime({
      kind,
      config,
      workerId: this.workerId,
      logger: this.logger,
      metrics: this.metrics,
      maxFrameBytes: this.maxFrameBytes,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      progress: options.progress,
    });
    // Built here so a bad manager URL fails before anything listens.
    this.announcer = options.managerUrl
      ? new Announcer({
          managerUrl: options.managerUrl,
          token: options.token,
          logger: this.logger,
          intervalMs: options.announceIntervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS,
          body: () => ({ endpoint: this.endpoint, workerType: kind.type, workerId: this.workerId }),
        })
      : undefined;
    this.app = Fastify({ logger: false, forceCloseConnections: true });
    // ws stops reading a message at maxPayload and kills the socket with 1009. A little above our own limit,
    // a slightly oversized frame reaches the codec and gets a typed `frame_too_large` reply; a huge one is
    // never buffered whole.
    const maxPayload = this.maxInboundFrameBytes + 64 * 1024;
    // Invalid UTF-8 in a text frame would make ws close the socket (1007); decoded leniently it becomes a
    // `bad_frame` or `invalid_message` reply like any other bad input, and the connection carries on.
    this.wss = new WebSocketServer({ noServer: true, maxPayload, skipUTF8Validation: true });
  }

  /** The bound port (after start); the configured one before. */
  get port(): number {
    return this.boundPort || this.options.config.port;
  }

  /** The WebSocket URL a manager dials: `ws://host:port/ws`. */
  get endpoint(): string {
    const configured = this.options.advertiseHost ?? this.options.config.host;
    const host = WILDCARD_HOSTS.has(configured) ? (this.options.advertiseHost ?? hostname()) : configured;
    const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return `ws://${shown}:${this.port}/ws`;
  }

  /** The fastify instance, for `inject()` in tests of kind routes. */
  get http(): FastifyInstance {
    return this.app;
  }

  /** Task slots in use right now. */
  get inFlight(): number {
    return this.runtime.inFlight;
  }

  get capabilities(): string[] {
    return [...this.runtime.capabilities];
  }

  get draining(): boolean {
    return this.runtime.isDraining;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new FleetError('conflict', `worker server already ${this.state}`);
    this.state = 'starting';
    const { kind, config } = this.options;
    try {
      await kind.start?.({ config, logger: this.logger, metrics: this.metrics.registry });
      this.kindStarted = true;
      this.registerRoutes();
      await kind.routes?.(this.app);
      this.app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.onUpgrade(req, socket, head),
      );
      try {
        await this.app.listen({ host: config.host, port: config.port });
      } catch (err) {
        throw new FleetError(
          'config_invalid',
          `${kind.type} worker cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      const address = this.app.server.address();
      this.boundPort = typeof address === 'object' && address ? address.port : config.port;
      this.startedAt = Date.now();
      this.state = 'started';
      this.startPinger();
    } catch (err) {
      this.state = 'stopped';
      await this.app.close().catch(() => undefined);
      if (this.kindStarted) await kind.stop?.().catch(() => undefined);
      throw err;
    }
    this.announcer?.start();
  }

  /**
   * Stops taking tasks (they are refused with `draining`), reports draining in heartbeats and /health, and
   * waits for running tasks, at most `timeoutMs`.
   * @returns true when every task finished in time.
   */
  drain(timeoutMs = this.options.drainTimeoutMs ?? 30_000): Promise<boolean> {
    return this.runtime.drain(timeoutMs);
  }

  /**
   * Aborts whatever still runs (answered as `cancelled`), gives handlers `graceMs` to return, closes the
   * sockets and the HTTP server, then stops the kind. Safe to call more than once.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.stopping ??= this.doStop(options.graceMs ?? 5_000);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    const wasStarted = this.state === 'started';
    this.state = 'stopping';
    this.announcer?.stop();
    if (this.pinger) clearInterval(this.pinger);
    if (wasStarted) {
      this.runtime.abortAll(new FleetError('cancelled', 'the worker is stopping'));
      const idle = await this.runtime.waitIdle(graceMs);
      if (!idle)
        this.logger.warn(
          { inFlight: this.runtime.inFlight },
          'handlers still running at stop; closing anyway',
        );
      await this.runtime.closeConnections(CLOSE_CODES.goingAway, 'worker stopping');
      for (const client of this.wss.clients) client.terminate();
      await new Promise<void>((resolve) => this.wss.close(() => resolve()));
      await this.app
        .close()
        .catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'http close failed'));
    }
    if (this.kindStarted) {
      this.kindStarted = false;
      await this.options.kind
        .stop?.()
        .catch((err: unknown) => this.logger.error({ err: (err as Error).message }, 'kind.stop() failed'));
    }
    this.state = 'stopped';
    this.logger.info('worker stopped');
  }

  /** The /health body and its HTTP status. */
  health(): { statusCode: number; body: HealthBody } {
    const { kind } = this.options;
    const live = this.state === 'started';
    let kindReady = true;
    try {
      kindReady = kind.ready?.() ?? true;
    } catch {
      kindReady = false;
    }
    const draining = this.runtime.isDraining;
    const ready = live && kindReady && !draining;
    const inFlight = this.runtime.inFlight;
    const max = this.runtime.maxConcurrency;
    let info: Record<string, unknown> | undefined;
    try {
      info = kind.info?.();
    } catch {
      info = undefined;
    }
    const status: HealthBody['status'] = draining
      ? 'draining'
      : !ready
        ? 'not_ready'
        : inFlight >= max
          ? 'busy'
          : 'ok';
    return {
      statusCode: ready ? 200 : 503,
      body: {
        status,
        live,
        ready,
        workerId: this.workerId,
        workerType: kind.type,
        version: kind.version,
        capabilities: this.capabilities,
        load: { inFlight, maxConcurrency: max, utilization: max > 0 ? inFlight / max : 0 },
        uptimeSec: this.startedAt ? Math.floor((Date.now() - this.startedAt) / 1000) : 0,
        connections: this.runtime.connectionCount,
        info,
      },
    };
  }

  private registerRoutes(): void {
    this.app.get('/health', async (_req, reply) => {
      const { statusCode, body } = this.health();
      return reply.code(statusCode).header('cache-control', 'no-store').send(body);
    });
    this.app.get('/metrics', async (_req, reply) => {
      const text = await this.metrics.registry.metrics();
      return reply.header('content-type', this.metrics.registry.contentType).send(text);
    });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let pathname = '';
    let queryToken: string | null = null;
    try {
      const url = new URL(req.url ?? '/', 'http://worker.invalid');
      pathname = url.pathname;
      queryToken = url.searchParams.get('token');
    } catch {
      pathname = '';
    }
    if (pathname !== '/ws') {
      refuseUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (this.state !== 'started' || this.wss.clients.size >= (this.options.maxConnections ?? 16)) {
      refuseUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    const authorized = this.checkToken(req.headers.authorization, queryToken);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.alive.add(ws);
      ws.on('pong', () => this.alive.add(ws));
      if (!authorized) {
        this.rejectUnauthorized(ws);
        return;
      }
      const transport = new WebSocketTransport<ManagerToWorker, WorkerToManager>(ws, {
        inbound: ManagerToWorkerSchema,
        maxFrameBytes: this.maxInboundFrameBytes,
      });
      const nonce = req.headers[NONCE_HEADER];
      this.runtime.attach(
        transport,
        this.token && typeof nonce === 'string' && nonce.length <= 200
          ? (workerId) => workerProof(this.token!, nonce, workerId)
          : undefined,
      );
    });
  }

  private startPinger(): void {
    const every = this.options.pingIntervalMs ?? 15_000;
    if (every <= 0) return;
    this.pinger = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (!this.alive.has(ws)) {
          this.logger.warn('a manager connection missed its pong; dropping it');
          ws.terminate();
          continue;
        }
        this.alive.delete(ws);
        ws.ping();
      }
    }, every);
    this.pinger.unref();
  }

  private checkToken(header: string | undefined, queryToken: string | null): boolean {
    if (!this.tokenDigest) return true;
    const match = header ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
    const presented = match?.[1] ?? queryToken;
    return (
      presented !== null && presented !== undefined && timingSafeEqual(digest(presented), this.tokenDigest)
    );
  }

  /**
   * A wrong token still gets a WebSocket, for one typed `error` frame and a 4401 close: a client library
   * then reports "unauthorized" instead of an opaque "unexpected server response: 401".
   */
  private rejectUnauthorized(ws: WebSocket): void {
    this.metrics.framesRejected.inc({ code: 'unauthorized' });
    this.logger.warn('refused a connection with a missing or wrong token');
    const error = new FleetError(
      'unauthorized',
      'a valid token is required: send "Authorization: Bearer <token>"',
    );
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'error', error: error.toJSON() }), () =>
      ws.close(CLOSE_CODES.unauthorized, 'unauthorized'),
    );
    const kill = setTimeout(() => ws.terminate(), 2_000);
    kill.unref();
    ws.once('close', () => clearTimeout(kill));
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.on('error', () => undefined);
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
