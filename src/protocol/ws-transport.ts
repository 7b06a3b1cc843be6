import { WebSocket } from 'ws';
import type { z } from 'zod';
import { batchWritesThisTurn } from './batch-writes.js';
import { deserialize, serialize, DEFAULT_MAX_FRAME_BYTES } from './codec.js';
import { FleetError } from './errors.js';
import type { Message } from './messages.js';
import type { CloseInfo, Transport } from './transport.js';

export interface WebSocketTransportOptions<S extends z.ZodType> {
  /** Schema of the messages this side accepts. */
  inbound: S;
  maxFrameBytes?: number;
}

export class WebSocketTransport<In extends Message, Out extends Message> implements Transport<In, Out> {
  onmessage?: (message: In) => void;
  onerror?: (error: FleetError) => void;
  onclose?: (info: CloseInfo) => void;
  private readonly maxFrameBytes: number;

  constructor(
    readonly socket: WebSocket,
    options: WebSocketTransportOptions<z.ZodType<In>>,
  ) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    socket.on('message', (data, isBinary) => {
      const frame = isBinary ? (data as Buffer) : (data as Buffer);
      const decoded = deserialize(frame, options.inbound, this.maxFrameBytes);
      if (decoded.ok) {
        this.onmessage?.(decoded.message);
        return;
      }
      this.reject(decoded.error, decoded.inReplyTo);
    });
    socket.on('close', (code, reason) => this.onclose?.({ code, reason: reason.toString('utf8') }));
    // 'error' is always followed by 'close'; listening keeps an unhandled 'error' from killing the process.
    socket.on('error', () => undefined);
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  send(message: Out): Promise<void> {
    if (!this.isOpen) return Promise.reject(new FleetError('worker_lost', 'connection is not open'));
    batchWritesThisTurn(this.socket);
    return new Promise((resolve, reject) => {
      this.socket.send(serialize(message), (err) =>
        err ? reject(new FleetError('worker_lost', `send failed: ${err.message}`)) : resolve(),
      );
    });
  }

  close(code = 1000, reason = ''): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const done = setTimeout(() => {
        this.socket.terminate();
        resolve();
      }, 2000);
      done.unref();
      this.socket.once('close', () => {
        clearTimeout(done);
        resolve();
      });
      this.socket.close(code, reason.slice(0, 120));
    });
  }

  /** Drops the connection at once, without the closing handshake (a dead peer will never answer it). */
  terminate(): void {
    this.socket.terminate();
  }

  private reject(error: FleetError, inReplyTo: string | undefined): void {
    this.onerror?.(error);
    if (!this.isOpen) return;
    const reply = { type: 'error', error: error.toJSON(), ...(inReplyTo ? { inReplyTo } : {}) };
    this.socket.send(JSON.stringify(reply), () => undefined);
  }
}
