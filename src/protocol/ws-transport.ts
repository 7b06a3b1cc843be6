import { WebSocket } from 'ws';
import type { z } from 'zod';
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
  private corked = false;

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
    this.corkUntilTurnEnds();
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

  /**
   * Holds this turn's frames in the socket and writes them with one syscall when the event loop reaches its
   * check phase. Under load a manager hands out many tasks per turn (and a worker answers many): one writev
   * (and one wake-up of the peer) per frame was the largest cost of a no-op task (docs/performance.md).
   */
  private corkUntilTurnEnds(): void {
    if (this.corked) return;
    // ws keeps the net.Socket private; without it (another WebSocket implementation) frames go out one by one.
    const raw = (this.socket as unknown as { _socket?: { cork?: () => void; uncork?: () => void } })._socket;
    if (typeof raw?.cork !== 'function' || typeof raw.uncork !== 'function') return;
    this.corked = true;
    raw.cork();
    setImmediate(() => {
      this.corked = false;
      raw.uncork!();
    });
  }

  private reject(error: FleetError, inReplyTo: string | undefined): void {
    this.onerror?.(error);
    if (!this.isOpen) return;
    const reply = { type: 'error', error: error.toJSON(), ...(inReplyTo ? { inReplyTo } : {}) };
    this.socket.send(JSON.stringify(reply), () => undefined);
  }
}
