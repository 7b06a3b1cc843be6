/**
 * A Transport carries validated protocol messages between two peers. It is the seam that lets the manager
 * and the worker runtime be tested without sockets (`InMemoryTransport.createLinkedPair()`) and run over
 * WebSockets in production (`WebSocketTransport`).
 *
 * Inbound frames are decoded and validated inside the transport. A frame that fails is answered with an
 * `error` message on the same connection and reported through `onerror`; it is never delivered and never
 * closes the connection.
 */
import type { FleetError } from './errors.js';
import type { Message } from './messages.js';

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface Transport<In extends Message, Out extends Message> {
  send(message: Out): Promise<void>;
  close(code?: number, reason?: string): Promise<void>;
  readonly isOpen: boolean;
  onmessage?: (message: In) => void;
  onerror?: (error: FleetError) => void;
  onclose?: (info: CloseInfo) => void;
  /** Bytes waiting in the send buffer, for backpressure decisions. */
  readonly bufferedAmount: number;
}

/** WebSocket close codes Fleet uses, so the other side can tell why it was cut off. */
export const CLOSE_CODES = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  policyViolation: 1008,
  unauthorized: 4401,
  protocolMismatch: 4400,
  replaced: 4409,
  /** The peer claimed the id of a worker already connected to this manager. */
  duplicate: 4408,
} as const;
