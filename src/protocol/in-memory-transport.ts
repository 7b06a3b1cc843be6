import type { z } from 'zod';
import { deserialize, serialize } from './codec.js';
import { FleetError } from './errors.js';
import type { Message } from './messages.js';
import type { CloseInfo, Transport } from './transport.js';

/**
 * Two linked transports in one process, for unit tests. Frames go through the same serialize/deserialize
 * pair as on a socket, so a test sees exactly what validation would let through.
 */
export class InMemoryTransport<In extends Message, Out extends Message> implements Transport<In, Out> {
  onmessage?: (message: In) => void;
  onerror?: (error: FleetError) => void;
  onclose?: (info: CloseInfo) => void;
  readonly bufferedAmount = 0;
  private peer: InMemoryTransport<Out, In> | undefined;
  private open = true;

  private constructor(private readonly inbound: z.ZodType<In>) {}

  static createLinkedPair<A extends Message, B extends Message>(
    aInbound: z.ZodType<A>,
    bInbound: z.ZodType<B>,
  ): [InMemoryTransport<A, B>, InMemoryTransport<B, A>] {
    const a = new InMemoryTransport<A, B>(aInbound);
    const b = new InMemoryTransport<B, A>(bInbound);
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  get isOpen(): boolean {
    return this.open;
  }

  send(message: Out): Promise<void> {
    if (!this.open || !this.peer)
      return Promise.reject(new FleetError('worker_lost', 'connection is not open'));
    this.peer.receiveRaw(serialize(message));
    return Promise.resolve();
  }

  /** Delivers a raw frame as if it came off the wire (tests use it for malformed input). */
  receiveRaw(frame: string): void {
    queueMicrotask(() => {
      if (!this.open) return;
      const decoded = deserialize(frame, this.inbound);
      if (decoded.ok) {
        this.onmessage?.(decoded.message);
        return;
      }
      this.onerror?.(decoded.error);
      const peer = this.peer;
      if (peer?.open) {
        peer.receiveRaw(
          JSON.stringify({
            type: 'error',
            error: decoded.error.toJSON(),
            ...(decoded.inReplyTo ? { inReplyTo: decoded.inReplyTo } : {}),
          }),
        );
      }
    });
  }

  close(code = 1000, reason = ''): Promise<void> {
    if (!this.open) return Promise.resolve();
    this.open = false;
    const peer = this.peer;
    queueMicrotask(() => {
      this.onclose?.({ code, reason });
      if (peer && peer.open) {
        peer.open = false;
        peer.onclose?.({ code, reason });
      }
    });
    return Promise.resolve();
  }
}
