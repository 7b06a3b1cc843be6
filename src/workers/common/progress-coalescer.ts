/**
 * Turns a handler's stream of `ctx.progress()` calls into a bounded stream of `task.progress` frames.
 *
 * A Python loop printing a million lines must not become a million WebSocket frames, nor megabytes of logs
 * in the manager's memory. So: log chunks are buffered per stream and flushed every `flushMs` (or sooner
 * when the buffer grows past `maxChunkBytes`) as at most one frame per stream; percent/message/partial are
 * "latest wins"; and the task's total progress bytes are capped: past `maxBytes` the log is cut with one
 * marker line and only percent updates still pass. The price of batching: the exact interleaving of stdout
 * and stderr inside one flush window is not kept (a pipe does not promise it either).
 */
import type { ProgressUpdate } from './worker-kind.js';

type Stream = 'stdout' | 'stderr' | 'log';

export interface ProgressCoalescerOptions {
  /** How long chunks may wait to be merged. @default 50 */
  flushMs?: number;
  /** Total bytes of logs, messages and partial outputs one task may send. @default 1 MiB */
  maxBytes?: number;
  /** A pending log chunk this big is flushed at once. @default 64 KiB */
  maxChunkBytes?: number;
}

const MAX_MESSAGE_CHARS = 10_000;

export class ProgressCoalescer {
  private readonly flushMs: number;
  private readonly maxBytes: number;
  private readonly maxChunkBytes: number;
  private percent: number | undefined;
  private message: string | undefined;
  private partial: { value: unknown } | undefined;
  /** Pending log text per stream, in order of first appearance since the last flush. */
  private logs = new Map<Stream, string>();
  private pendingLogBytes = 0;
  private used = 0;
  private cut = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly emit: (update: ProgressUpdate) => void,
    options: ProgressCoalescerOptions = {},
  ) {
    this.flushMs = options.flushMs ?? 50;
    this.maxBytes = options.maxBytes ?? 1024 * 1024;
    this.maxChunkBytes = options.maxChunkBytes ?? 64 * 1024;
  }

  /** Bytes of logs, messages and partials accepted so far (the cap counts these). */
  get bytesUsed(): number {
    return this.used;
  }

  get truncated(): boolean {
    return this.cut;
  }

  push(update: ProgressUpdate): void {
    if (this.closed || update === null || typeof update !== 'object') return;
    if (typeof update.percent === 'number' && Number.isFinite(update.percent)) {
      this.percent = Math.min(100, Math.max(0, update.percent));
    }
    if (typeof update.message === 'string') {
      const message = update.message.slice(0, MAX_MESSAGE_CHARS);
      if (this.take(Buffer.byteLength(message))) this.message = message;
    }
    if (update.partial !== undefined) {
      const size = jsonSize(update.partial);
      if (size !== undefined && this.take(size)) this.partial = { value: update.partial };
    }
    const log = update.log;
    if (log && typeof log.data === 'string' && log.data.length > 0) {
      const stream: Stream = log.stream === 'stdout' || log.stream === 'stderr' ? log.stream : 'log';
      this.appendLog(stream, log.data);
    }
    this.schedule();
  }

  /** Sends everything pending now. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const logs = [...this.logs].map(([stream, data]) => ({ stream, data }));
    const head: ProgressUpdate = {};
    if (this.percent !== undefined) head.percent = this.percent;
    if (this.message !== undefined) head.message = this.message;
    if (this.partial) head.partial = this.partial.value;
    this.logs = new Map();
    this.pendingLogBytes = 0;
    this.percent = undefined;
    this.message = undefined;
    this.partial = undefined;
    if (logs.length === 0) {
      if (Object.keys(head).length > 0) this.emit(head);
      return;
    }
    logs.forEach((log, i) => this.emit(i === 0 ? { ...head, log } : { log }));
  }

  /** Flushes and then ignores every later update (the task has been answered). */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  private take(bytes: number): boolean {
    if (this.used + bytes > this.maxBytes) {
      this.truncate();
      return false;
    }
    this.used += bytes;
    return true;
  }

  private appendLog(stream: Stream, data: string): void {
    if (this.cut) return;
    const bytes = Buffer.byteLength(data);
    const room = this.maxBytes - this.used;
    if (bytes > room) {
      // Keep what fits, so the operator sees the output up to the cut.
      const head = room > 0 ? Buffer.from(data).subarray(0, room).toString('utf8') : '';
      if (head) this.addChunk(stream, head, room);
      this.used = this.maxBytes;
      this.truncate();
      return;
    }
    this.used += bytes;
    this.addChunk(stream, data, bytes);
  }

  private truncate(): void {
    if (this.cut) return;
    this.cut = true;
    const marker = `\n[fleet: progress output truncated at ${this.maxBytes} bytes]\n`;
    this.addChunk('log', marker, Buffer.byteLength(marker));
  }

  private addChunk(stream: Stream, data: string, bytes: number): void {
    this.logs.set(stream, (this.logs.get(stream) ?? '') + data);
    this.pendingLogBytes += bytes;
    if (this.pendingLogBytes >= this.maxChunkBytes) this.flush();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    if (this.logs.size === 0 && this.percent === undefined && this.message === undefined && !this.partial)
      return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.flushMs);
    this.timer.unref();
  }
}

function jsonSize(value: unknown): number | undefined {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? undefined : Buffer.byteLength(text);
  } catch {
    return undefined;
  }
}
