/**
 * `GET /api/channel` upgraded to a WebSocket: the persistent client channel (src/protocol/client-channel.ts).
 * One connection carries many requests at once, each named by the client's `rid`; an agent holding a long
 * session pays neither an HTTP request nor a long-poll per task.
 *
 * Guards: the token is checked at the upgrade like the HTTP API's (the read-only token may wait, get and
 * follow, not submit or cancel); frames are bounded in size (ws closes 1009 past the limit) and requests in
 * number per connection (`too_many_requests`); a bad frame costs only itself (a typed `error` carrying its
 * rid when it could be read). A client that does not read its answers is paused (its socket is not read)
 * until its backlog drains, so it cannot grow the manager's memory.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { batchWritesThisTurn } from '../../protocol/batch-writes.js';
import {
  ClientToManagerSchema,
  WRITE_REQUESTS,
  type ClientToManager,
  type ManagerToClient,
} from '../../protocol/client-channel.js';
import { FleetError, toFleetError } from '../../protocol/errors.js';
import type { ManagerEvent, WorkerManager } from '../manager.js';
import { isFinal, type TaskRecord } from '../queue/task.js';
import { authorize, type AuthOptions } from './auth.js';
import { releaseOnShutdown } from './event-stream.js';
import { publicTask } from './views.js';

export const CLIENT_CHANNEL_PATH = '/api/channel';
/** Requests one connection may have in flight; past it a request is refused with `too_many_requests`. */
export const DEFAULT_CHANNEL_MAX_IN_FLIGHT = 4096;
/** Unsent answers past which the manager stops reading the connection until they drain. */
const PAUSE_ABOVE_BYTES = 4 * 1024 * 1024;
const RESUME_BELOW_BYTES = 1024 * 1024;
/** A waited task is re-read at least this often, so a missed event cannot strand its waiter. */
const WAIT_SLICE_MS = 60_000;

export interface ClientChannelOptions extends AuthOptions {
  maxInFlight?: number;
  maxFrameBytes?: number;
}

export function attachClientChannel(
  app: FastifyInstance,
  manager: WorkerManager,
  options: ClientChannelOptions,
): void {
  const maxFrameBytes = options.maxFrameBytes ?? 16 * 1024 * 1024;
  const maxInFlight = options.maxInFlight ?? DEFAULT_CHANNEL_MAX_IN_FLIGHT;
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== CLIENT_CHANNEL_PATH) return;
    let access: 'read' | 'write';
    try {
      access = accessOf(options, req);
    } catch (err) {
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify({ error: toFleetError(err).toJSON() })}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      new ChannelSession(ws, manager, access, maxInFlight, maxFrameBytes);
    });
  });
  app.addHook('preClose', async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
}

function accessOf(options: AuthOptions, req: IncomingMessage): 'read' | 'write' {
  try {
    authorize(options, req, 'write');
    return 'write';
  } catch (err) {
    // The read-only token opens a channel that may only read; anything else is refused at the upgrade.
    authorize(options, req, 'read');
    void err;
    return 'read';
  }
}

class ChannelSession {
  private inFlight = 0;
  private closed = false;
  private paused = false;
  /** rids that asked for a task's progress, by task id. */
  private readonly progressFor = new Map<string, Set<string>>();
  private unsubscribeProgress: (() => void) | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly manager: WorkerManager,
    private readonly access: 'read' | 'write',
    private readonly maxInFlight: number,
    maxFrameBytes: number,
  ) {
    ws.on('message', (data: Buffer, isBinary) => this.onFrame(data, isBinary));
    ws.on('close', () => {
      this.closed = true;
      this.progressFor.clear();
      this.unsubscribeProgress?.();
    });
    // 'error' is always followed by 'close'; listening keeps an unhandled 'error' from killing the process.
    ws.on('error', () => undefined);
    this.send({ type: 'hello', managerId: manager.id, maxInFlight, maxFrameBytes, access });
    releaseOnShutdown(ws, manager);
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    let raw: unknown;
    try {
      if (isBinary) throw new Error('binary frames are not read');
      raw = JSON.parse(data.toString('utf8'));
    } catch (err) {
      this.sendError(undefined, new FleetError('bad_frame', `frame is not JSON: ${(err as Error).message}`));
      return;
    }
    const rawRid = (raw as { rid?: unknown } | null)?.rid;
    const rid = typeof rawRid === 'string' && rawRid.length <= 100 ? rawRid : undefined;
    const parsed = ClientToManagerSchema.safeParse(raw);
    if (!parsed.success) {
      const type = (raw as { type?: unknown } | null)?.type;
      const issue = parsed.error.issues[0];
      const unknownType =
        typeof type !== 'string' ||
        parsed.error.issues.some((i) => i.code === 'invalid_union' && i.path[0] === 'type');
      this.sendError(
        rid,
        unknownType
          ? new FleetError(
              'unknown_message',
              typeof type === 'string'
                ? `unknown request type "${type.slice(0, 100)}"`
                : 'frame has no string "type"',
            )
          : new FleetError(
              'invalid_message',
              `invalid "${String(type).slice(0, 100)}" request at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
            ),
      );
      return;
    }
    const request = parsed.data;
    if (this.access === 'read' && WRITE_REQUESTS.has(request.type)) {
      this.sendError(
        request.rid,
        new FleetError('unauthorized', 'this token may only read; actions need the operator token'),
      );
      return;
    }
    if (this.inFlight >= this.maxInFlight) {
      this.sendError(
        request.rid,
        new FleetError(
          'too_many_requests',
          `this connection already has ${this.inFlight} requests in flight (limit ${this.maxInFlight})`,
          { details: { limit: this.maxInFlight } },
        ),
      );
      return;
    }
    this.inFlight += 1;
    this.handle(request)
      .catch((err: unknown) => this.sendError(request.rid, toFleetError(err)))
      .finally(() => (this.inFlight -= 1));
  }

  private async handle(request: ClientToManager): Promise<void> {
    switch (request.type) {
      case 'submit': {
        if (!request.wait) {
          const { task, created } = await this.manager.submit(request.task);
          this.send({ type: 'accepted', rid: request.rid, task: publicTask(task), created });
          return;
        }
        // An id chosen here (when the client chose none) lets progress be routed before the task exists.
        const input = withId(request.task);
        const id = (input as { id?: unknown }).id;
        const stopProgress =
          request.progress && typeof id === 'string' ? this.follow(id, request.rid) : undefined;
        try {
          const { task } = await this.manager.submitAndWait(input);
          await this.finish(request.rid, task);
        } finally {
          stopProgress?.();
        }
        return;
      }
      case 'submitMany': {
        const results = await this.manager.submitMany(request.tasks);
        this.send({
          type: 'accepted',
          rid: request.rid,
          tasks: results.map(({ task, created }) => ({ task: publicTask(task), created })),
        });
        return;
      }
      case 'wait': {
        const stopProgress = request.progress ? this.follow(request.taskId, request.rid) : undefined;
        try {
          await this.finish(request.rid, await this.manager.getTask(request.taskId));
        } finally {
          stopProgress?.();
        }
        return;
      }
      case 'cancel': {
        const task = await this.manager.cancelTask(request.taskId, 'cancelled through the API');
        this.send({ type: 'task', rid: request.rid, task: publicTask(task) });
        return;
      }
      case 'get':
        this.send({
          type: 'task',
          rid: request.rid,
          task: publicTask(await this.manager.getTask(request.taskId)),
        });
        return;
    }
  }

  /** Sends `result` once the task is final; a closed connection stops waiting (its client re-asks). */
  private async finish(rid: string, current: TaskRecord): Promise<void> {
    let task = current;
    while (!isFinal(task.state)) {
      if (this.closed) return;
      task = await this.manager.waitForTask(task.id, { timeoutMs: WAIT_SLICE_MS });
    }
    this.send({ type: 'result', rid, task: publicTask(task) });
  }

  private follow(taskId: string, rid: string): () => void {
    let rids = this.progressFor.get(taskId);
    if (!rids) this.progressFor.set(taskId, (rids = new Set()));
    rids.add(rid);
    // One manager subscription per connection, and only while someone on it follows progress: the
    // subscription sees every event of the manager.
    this.unsubscribeProgress ??= this.manager.subscribe((event) => this.onEvent(event), {
      types: ['progress'],
    });
    return () => {
      rids.delete(rid);
      if (rids.size === 0 && this.progressFor.get(taskId) === rids) this.progressFor.delete(taskId);
      if (this.progressFor.size === 0) {
        this.unsubscribeProgress?.();
        this.unsubscribeProgress = undefined;
      }
    };
  }

  private onEvent(event: ManagerEvent): void {
    if (event.type !== 'progress') return;
    const p = event.progress;
    const rids = this.progressFor.get(p.taskId);
    if (!rids) return;
    for (const rid of rids) {
      this.send({
        type: 'progress',
        rid,
        taskId: p.taskId,
        attempt: p.attempt,
        ...(p.percent !== undefined ? { percent: p.percent } : {}),
        ...(p.message !== undefined ? { message: p.message } : {}),
        ...(p.log ? { log: p.log } : {}),
      });
    }
  }

  private sendError(rid: string | undefined, error: FleetError): void {
    this.send({ type: 'error', ...(rid !== undefined ? { rid } : {}), error: error.toJSON() });
  }

  private send(frame: ManagerToClient): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    batchWritesThisTurn(this.ws);
    this.ws.send(JSON.stringify(frame));
    if (!this.paused && this.ws.bufferedAmount > PAUSE_ABOVE_BYTES) this.pauseUntilDrained();
  }

  /** Backpressure: read no new requests while the client leaves its answers unread. */
  private pauseUntilDrained(): void {
    this.paused = true;
    this.ws.pause();
    const poll = setInterval(() => {
      if (this.closed || this.ws.bufferedAmount < RESUME_BELOW_BYTES) {
        clearInterval(poll);
        this.paused = false;
        this.ws.resume();
      }
    }, 10);
    poll.unref();
  }
}

function withId(task: unknown): unknown {
  if (typeof task !== 'object' || task === null || Array.isArray(task) || 'id' in task) return task;
  return { ...task, id: randomUUID() };
}
