/**
 * The client's end of the manager's persistent channel (`/api/channel`, src/protocol/client-channel.ts):
 * one WebSocket carrying many requests, each answered by rid.
 *
 * - Backpressure: no more requests are on the wire than the manager's `maxInFlight` (from its hello) or the
 *   socket's buffer allows; the rest wait here, in order.
 * - Reconnect and resubscribe: when the connection drops, every unanswered request is sent again on the next
 *   one. Submits carry a client-chosen task id, so sending one again finds the task instead of making a
 *   second; a waited request's `result` therefore still arrives, and is delivered exactly once (the first
 *   answer for a rid settles it, anything after is dropped). After `reconnectTimeoutMs` without a connection
 *   the waiting requests fail with `manager_unreachable`; a refused token fails them at once.
 */
import { WebSocket } from 'ws';
import { batchWritesThisTurn } from '../protocol/batch-writes.js';
import type { ChannelHello } from '../protocol/client-channel.js';
import { FleetError, type FleetErrorShape } from '../protocol/errors.js';

export interface ClientChannelOptions {
  /** ws://host:port/api/channel */
  url: string;
  token?: string;
  /** How long to keep trying to reconnect before waiting requests fail. @default 30 000 */
  reconnectTimeoutMs?: number;
}

export interface ChannelProgress {
  taskId: string;
  attempt: number;
  percent?: number;
  message?: string;
  log?: { stream: string; data: string };
}

type Answer = 'accepted' | 'result' | 'task';

interface Pending {
  rid: string;
  text: string;
  answer: Answer;
  onProgress: ((p: ChannelProgress) => void) | undefined;
  resolve(frame: Record<string, unknown>): void;
  reject(err: FleetError): void;
  onWire: boolean;
}

/** Stop handing frames to the socket while this much is still unsent. */
const HIGH_WATER_BYTES = 1024 * 1024;
const PING_EVERY_MS = 10_000;

export class ClientChannel {
  private ws: WebSocket | undefined;
  private hello: ChannelHello | undefined;
  private connecting: Promise<void> | undefined;
  private readonly pending = new Map<string, Pending>();
  /** Requests not on the wire yet, in the order they were made. */
  private waiting: Pending[] = [];
  private onWire = 0;
  private nextRid = 0;
  private closed = false;
  private disconnectedAt: number | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ClientChannelOptions) {}

  /** Opens the connection now (requests open it anyway); resolves once the manager said hello. */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new FleetError('manager_unreachable', 'the channel is closed'));
    if (this.hello && this.ws?.readyState === WebSocket.OPEN) return Promise.resolve();
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Sends a request; resolves with its answer frame. */
  request(
    frame: Record<string, unknown>,
    answer: Answer,
    onProgress?: (p: ChannelProgress) => void,
  ): { rid: string; done: Promise<Record<string, unknown>> } {
    const rid = String(++this.nextRid);
    const done = new Promise<Record<string, unknown>>((resolve, reject) => {
      if (this.closed) throw new FleetError('manager_unreachable', 'the channel is closed');
      const text = JSON.stringify({ ...frame, rid });
      const limit = this.hello?.maxFrameBytes;
      if (limit !== undefined && Buffer.byteLength(text) > limit) {
        throw new FleetError(
          'frame_too_large',
          `request of ${Buffer.byteLength(text)} bytes is over the manager's ${limit}-byte frame limit`,
          {
            details: { size: Buffer.byteLength(text), limit },
          },
        );
      }
      const p: Pending = { rid, text, answer, onProgress, resolve, reject, onWire: false };
      this.pending.set(rid, p);
      this.waiting.push(p);
      this.flush();
    });
    return { rid, done };
  }

  /** Forgets a request (its caller stopped waiting); a late answer is dropped. */
  abandon(rid: string): void {
    const p = this.pending.get(rid);
    if (!p) return;
    this.pending.delete(rid);
    if (p.onWire) this.onWire -= 1;
    else this.waiting = this.waiting.filter((w) => w !== p);
    this.flush();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.flushTimer);
    this.ws?.close(1000, 'client closed');
    this.ws = undefined;
    this.failAll(new FleetError('manager_unreachable', 'the channel was closed'));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private flush(): void {
    const ws = this.ws;
    if (!ws || !this.hello || ws.readyState !== WebSocket.OPEN) {
      if (!this.closed && this.waiting.length > 0 && !this.connecting && !this.retryTimer) {
        this.disconnectedAt ??= Date.now();
        this.reconnect(0);
      }
      return;
    }
    while (this.waiting.length > 0 && this.onWire < this.hello.maxInFlight) {
      if (ws.bufferedAmount > HIGH_WATER_BYTES) {
        // Wait for the socket to drain: nothing tells us when, so look again shortly.
        this.flushTimer ??= setTimeout(() => {
          this.flushTimer = undefined;
          this.flush();
        }, 5);
        return;
      }
      const p = this.waiting.shift()!;
      p.onWire = true;
      this.onWire += 1;
      // Callers that issue many requests in one turn (fan-out, a closed loop) share one write.
      batchWritesThisTurn(ws);
      ws.send(p.text);
    }
  }

  private open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(this.options.url, {
        headers: this.options.token ? { authorization: `Bearer ${this.options.token}` } : {},
      });
      let settled = false;
      const fail = (err: FleetError) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      let alive = true;
      const ping = setInterval(() => {
        // No pong since the last ping: the manager (or the path to it) is gone without a close.
        if (!alive) ws.terminate();
        alive = false;
        if (ws.readyState === WebSocket.OPEN) ws.ping();
      }, PING_EVERY_MS);
      ping.unref();
      ws.on('pong', () => (alive = true));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString('utf8')));
        res.on('end', () => {
          let shape: FleetErrorShape | undefined;
          try {
            shape = (JSON.parse(body) as { error?: FleetErrorShape }).error;
          } catch {
            // not our JSON
          }
          const err = shape
            ? FleetError.from(shape)
            : new FleetError('manager_unreachable', `channel refused: HTTP ${res.statusCode}`);
          fail(err);
          // A refused token will be refused again: fail what waits instead of retrying.
          if (err.code === 'unauthorized') this.failAll(err);
          ws.terminate();
        });
      });
      ws.on('error', (err) => fail(new FleetError('manager_unreachable', `channel: ${err.message}`)));
      ws.on('message', (data: Buffer) => {
        if (this.ws !== ws && this.ws !== undefined) return;
        let frame: Record<string, unknown>;
        try {
          frame = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        } catch {
          return; // the manager only sends JSON
        }
        if (frame.type === 'hello') {
          this.ws = ws;
          this.hello = frame as unknown as ChannelHello;
          this.disconnectedAt = undefined;
          settled = true;
          resolve();
          this.flush();
          return;
        }
        this.onFrame(frame);
      });
      ws.on('close', () => {
        clearInterval(ping);
        fail(new FleetError('manager_unreachable', 'channel closed before the manager said hello'));
        if (this.ws === ws) this.lost();
      });
    });
  }

  private onFrame(frame: Record<string, unknown>): void {
    const rid = typeof frame.rid === 'string' ? frame.rid : undefined;
    const p = rid !== undefined ? this.pending.get(rid) : undefined;
    if (!p) return; // an answer to a request already settled or abandoned: exactly once
    if (frame.type === 'progress') {
      p.onProgress?.(frame as unknown as ChannelProgress);
      return;
    }
    if (frame.type === 'error') {
      const err = FleetError.from(frame.error as FleetErrorShape);
      // The manager is going away: keep the request for the next connection (to it or its successor).
      if (err.code === 'shutting_down') return;
      this.settle(p);
      p.reject(err);
      return;
    }
    if (frame.type !== p.answer) return;
    this.settle(p);
    p.resolve(frame);
  }

  private settle(p: Pending): void {
    this.pending.delete(p.rid);
    if (p.onWire) this.onWire -= 1;
    this.flush();
  }

  /** The connection dropped: everything unanswered goes back in line, in request order, for the next one. */
  private lost(): void {
    this.ws = undefined;
    this.hello = undefined;
    this.onWire = 0;
    this.waiting = [...this.pending.values()];
    for (const p of this.waiting) p.onWire = false;
    this.disconnectedAt ??= Date.now();
    if (this.pending.size > 0) this.reconnect(50);
  }

  private reconnect(delayMs: number): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.pending.size === 0) return;
      if (this.hello && this.ws?.readyState === WebSocket.OPEN) return this.flush();
      this.connect().catch((err: FleetError) => {
        const since = this.disconnectedAt ?? Date.now();
        if (err.code === 'unauthorized') return;
        if (Date.now() - since >= (this.options.reconnectTimeoutMs ?? 30_000)) {
          this.failAll(
            new FleetError(
              'manager_unreachable',
              `lost the channel to the manager and could not reconnect: ${err.message}`,
            ),
          );
          return;
        }
        this.reconnect(Math.min(Math.max(delayMs * 2, 50), 2000));
      });
    }, delayMs);
  }

  private failAll(err: FleetError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    this.waiting = [];
    this.onWire = 0;
    for (const p of all) p.reject(err);
  }
}
