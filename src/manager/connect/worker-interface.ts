/**
 * The spec's WebSocketWorkerInterface: how the manager reaches workers. `connect` dials an endpoint and
 * completes the handshake (the worker's `hello`, the manager's `welcome`); after that a connection is known by
 * the worker id it announced.
 *
 * Two implementations share the handshake: `RealWebSocketWorkerInterface` dials over `ws`, and
 * `MockWebSocketWorkerInterface` links in-memory transports to workers living in the same process (tests of
 * the whole manager without ports).
 *
 * It is the dispatcher's only way to the workers: the dispatcher adopts a connection the manager accepted
 * (discovery may still refuse one, e.g. a duplicate id, so `connect` alone does not make it current), then
 * sends with `sendMessage`, listens with `subscribeToMessages` and lets go with `forget`/`disconnect`.
 */
import { WebSocket } from 'ws';
import { FleetError } from '../../protocol/errors.js';
import { CLOSE_CODES, type CloseInfo, type Transport } from '../../protocol/transport.js';
import { WebSocketTransport } from '../../protocol/ws-transport.js';
import { InMemoryTransport } from '../../protocol/in-memory-transport.js';
import { newNonce, proofMatches } from '../../protocol/worker-proof.js';
import {
  ManagerToWorkerSchema,
  NONCE_HEADER,
  PROTOCOL_VERSION,
  WorkerToManagerSchema,
  type Hello,
  type ManagerToWorker,
  type WorkerToManager,
} from '../../protocol/messages.js';

export type MessageCallback = (message: WorkerToManager) => void;

export interface WorkerConnection {
  readonly endpoint: string;
  readonly hello: Hello;
  readonly workerId: string;
  readonly isOpen: boolean;
  readonly bufferedAmount: number;
  send(message: ManagerToWorker): Promise<void>;
  close(code?: number, reason?: string): Promise<void>;
  /** Cuts the connection without a closing handshake (the peer is presumed dead). */
  terminate(): void;
  onmessage?: MessageCallback;
  onclose?: (info: CloseInfo) => void;
  onframeerror?: (error: FleetError) => void;
}

export interface WebSocketWorkerInterface {
  connect(endpoint: string): Promise<WorkerConnection>;
  /** Makes a handshaken connection its worker's current one. */
  adopt(connection: WorkerConnection): void;
  /** The worker's current connection, open or not. */
  connection(workerId: string): WorkerConnection | undefined;
  /** Stops knowing the worker's connection (without closing it) and returns it. */
  forget(workerId: string): WorkerConnection | undefined;
  disconnect(workerId: string): Promise<void>;
  /** Sends on the worker's open connection; `worker_lost` when there is none. */
  sendMessage(workerId: string, message: ManagerToWorker): Promise<void>;
  subscribeToMessages(workerId: string, callback: MessageCallback): Promise<void>;
}

export interface HandshakeOptions {
  managerId: string;
  heartbeatIntervalMs: number;
  handshakeTimeoutMs?: number;
}

/** What the worker must prove in `hello` before its id is believed (set when a token is configured). */
export interface HelloAuth {
  token: string;
  nonce: string;
}

type ManagerTransport = Transport<WorkerToManager, ManagerToWorker> & { terminate?(): void };

/** Frames kept between `welcome` and the first `onmessage` (a reconnecting worker sends held answers at once). */
const MAX_EARLY_FRAMES = 1024;

class TransportConnection implements WorkerConnection {
  onclose?: (info: CloseInfo) => void;
  onframeerror?: (error: FleetError) => void;
  private handler?: MessageCallback;
  /** Frames that arrived before anyone listened; undefined once a listener took them. */
  private early: WorkerToManager[] | undefined = [];

  constructor(
    readonly endpoint: string,
    readonly hello: Hello,
    private readonly transport: ManagerTransport,
  ) {
    transport.onmessage = (m) => {
      if (this.handler) this.handler(m);
      else if (this.early && this.early.length < MAX_EARLY_FRAMES) this.early.push(m);
    };
    transport.onclose = (info) => this.onclose?.(info);
    transport.onerror = (e) => this.onframeerror?.(e);
  }

  get onmessage(): MessageCallback | undefined {
    return this.handler;
  }

  set onmessage(handler: MessageCallback | undefined) {
    this.handler = handler;
    const early = this.early;
    if (!handler || !early) return;
    this.early = undefined;
    for (const m of early) handler(m);
  }

  get workerId(): string {
    return this.hello.workerId;
  }
  get isOpen(): boolean {
    return this.transport.isOpen;
  }
  get bufferedAmount(): number {
    return this.transport.bufferedAmount;
  }
  send(message: ManagerToWorker): Promise<void> {
    return this.transport.send(message);
  }
  close(code?: number, reason?: string): Promise<void> {
    return this.transport.close(code, reason);
  }
  terminate(): void {
    if (this.transport.terminate) this.transport.terminate();
    else void this.transport.close(CLOSE_CODES.goingAway, 'terminated');
  }
}

/** Waits for `hello`, checks the version, answers `welcome`. Any failure closes the transport and throws typed. */
export function handshake(
  endpoint: string,
  transport: ManagerTransport,
  options: HandshakeOptions,
  auth?: HelloAuth,
): Promise<WorkerConnection> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: FleetError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(
        new FleetError(
          'worker_lost',
          `no hello from ${endpoint} within ${options.handshakeTimeoutMs ?? 5000} ms`,
        ),
      );
      void transport.close(CLOSE_CODES.protocolError, 'handshake timeout');
    }, options.handshakeTimeoutMs ?? 5000);
    timer.unref();
    transport.onclose = (info) => {
      if (info.code === CLOSE_CODES.unauthorized)
        fail(new FleetError('unauthorized', `worker ${endpoint} refused the token`));
      else if (info.code === CLOSE_CODES.protocolMismatch)
        fail(new FleetError('protocol_mismatch', `worker ${endpoint}: ${info.reason}`));
      else
        fail(
          new FleetError(
            'worker_lost',
            `worker ${endpoint} closed during handshake (${info.code} ${info.reason})`,
          ),
        );
    };
    transport.onmessage = (message) => {
      if (settled) return;
      if (message.type === 'error') {
        fail(FleetError.from(message.error));
        void transport.close(CLOSE_CODES.normal, 'handshake failed');
        return;
      }
      if (message.type !== 'hello') {
        fail(new FleetError('invalid_message', `expected hello from ${endpoint}, got ${message.type}`));
        void transport.close(CLOSE_CODES.protocolError, 'expected hello');
        return;
      }
      if (message.protocolVersion !== PROTOCOL_VERSION) {
        const err = new FleetError(
          'protocol_mismatch',
          `worker ${message.workerId} speaks protocol ${message.protocolVersion}, this manager speaks ${PROTOCOL_VERSION}`,
        );
        void transport
          .send({ type: 'error', error: err.toJSON(), inReplyTo: 'hello' })
          .catch(() => undefined)
          .finally(() => void transport.close(CLOSE_CODES.protocolMismatch, err.message));
        fail(err);
        return;
      }
      if (auth && !proofMatches(auth.token, auth.nonce, message.workerId, message.proof)) {
        const err = new FleetError(
          'unauthorized',
          `the peer at ${endpoint} did not prove it holds the token; its id "${message.workerId}" is not believed`,
        );
        void transport
          .send({ type: 'error', error: err.toJSON(), inReplyTo: 'hello' })
          .catch(() => undefined)
          .finally(() => void transport.close(CLOSE_CODES.unauthorized, 'unauthorized'));
        fail(err);
        return;
      }
      settled = true;
      clearTimeout(timer);
      const connection = new TransportConnection(endpoint, message, transport);
      transport
        .send({
          type: 'welcome',
          protocolVersion: PROTOCOL_VERSION,
          managerId: options.managerId,
          heartbeatIntervalMs: options.heartbeatIntervalMs,
        })
        .then(() => resolve(connection))
        .catch((err: unknown) =>
          reject(err instanceof FleetError ? err : new FleetError('worker_lost', String(err))),
        );
    };
  });
}

abstract class BaseWorkerInterface implements WebSocketWorkerInterface {
  protected readonly connections = new Map<string, WorkerConnection>();

  abstract connect(endpoint: string): Promise<WorkerConnection>;

  adopt(connection: WorkerConnection): void {
    this.connections.set(connection.workerId, connection);
  }

  connection(workerId: string): WorkerConnection | undefined {
    return this.connections.get(workerId);
  }

  forget(workerId: string): WorkerConnection | undefined {
    const c = this.connections.get(workerId);
    this.connections.delete(workerId);
    return c;
  }

  private get(workerId: string): WorkerConnection {
    const c = this.connections.get(workerId);
    if (!c || !c.isOpen) throw new FleetError('worker_lost', `worker ${workerId} is not connected`);
    return c;
  }

  async disconnect(workerId: string): Promise<void> {
    const c = this.connections.get(workerId);
    this.connections.delete(workerId);
    await c?.close(CLOSE_CODES.normal, 'disconnect');
  }

  async sendMessage(workerId: string, message: ManagerToWorker): Promise<void> {
    await this.get(workerId).send(message);
  }

  /** Works on a connection that closed meanwhile too: its close handler, not this, reports the loss. */
  async subscribeToMessages(workerId: string, callback: MessageCallback): Promise<void> {
    const c = this.connections.get(workerId);
    if (!c) throw new FleetError('not_found', `no connection to worker ${workerId}`);
    c.onmessage = callback;
  }
}

export interface RealInterfaceOptions extends HandshakeOptions {
  token?: string;
  maxFrameBytes?: number;
  connectTimeoutMs?: number;
}

export class RealWebSocketWorkerInterface extends BaseWorkerInterface {
  constructor(private readonly options: RealInterfaceOptions) {
    super();
  }

  async connect(endpoint: string): Promise<WorkerConnection> {
    const url = new URL(endpoint);
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      throw new FleetError('invalid_message', `worker endpoint must be ws:// or wss://, got ${endpoint}`);
    }
    const maxFrameBytes = this.options.maxFrameBytes;
    const token = this.options.token;
    const nonce = newNonce();
    const socket = new WebSocket(endpoint, {
      headers: token ? { authorization: `Bearer ${token}`, [NONCE_HEADER]: nonce } : {},
      handshakeTimeout: this.options.connectTimeoutMs ?? 5000,
      maxPayload: (maxFrameBytes ?? 32 * 1024 * 1024) * 2,
      perMessageDeflate: false,
    });
    // The transport listens from the first byte: ws may deliver the worker's hello in the same tick as 'open'.
    const transport = new WebSocketTransport<WorkerToManager, ManagerToWorker>(socket, {
      inbound: WorkerToManagerSchema,
      ...(maxFrameBytes ? { maxFrameBytes } : {}),
    });
    let connectError: FleetError | undefined;
    socket.once('error', (err) => {
      const refused = /Unexpected server response: 401/.test(err.message);
      connectError = new FleetError(
        refused ? 'unauthorized' : 'worker_lost',
        `cannot reach ${endpoint}: ${err.message}`,
      );
    });
    try {
      return await handshake(endpoint, transport, this.options, token ? { token, nonce } : undefined);
    } catch (err) {
      throw connectError ?? err;
    }
  }
}

/** The worker end of an in-memory link: a test attaches its in-process worker to it. */
export type WorkerSideTransport = InMemoryTransport<ManagerToWorker, WorkerToManager>;

export class MockWebSocketWorkerInterface extends BaseWorkerInterface {
  constructor(
    private readonly options: HandshakeOptions,
    /** Called with the worker side of a fresh link; the in-process worker must send `hello` on it. */
    private readonly attach: (endpoint: string, workerSide: WorkerSideTransport) => void,
  ) {
    super();
  }

  async connect(endpoint: string): Promise<WorkerConnection> {
    const [managerSide, workerSide] = InMemoryTransport.createLinkedPair<WorkerToManager, ManagerToWorker>(
      WorkerToManagerSchema,
      ManagerToWorkerSchema,
    );
    const pending = handshake(endpoint, managerSide, this.options);
    this.attach(endpoint, workerSide);
    return pending;
  }
}
