/**
 * Drives a worker kind through the real runtime over a real WebSocket, the way the manager would, so each
 * kind's tests need no manager. Every frame the worker sends is validated against the protocol schema;
 * anything that fails lands in `violations` (assert it stays empty).
 *
 * Every `task.result` is also checked against the result schema the worker advertised for its capability in
 * its hello (issue 18), with ajv as the catalog and MCP clients check it: a mismatch rejects the answer, so
 * every real run in every worker test proves the advertised schema true (result-schemas.ts).
 *
 *   const { server, endpoint, stop } = await startWorker(createEchoKind(cfg), { max_concurrent_tasks: 2 });
 *   const fm = await connectFakeManager(endpoint);
 *   const answer = await fm.assign('echo', { hi: 1 });   // TaskResult | TaskErrorMessage
 */
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterEach } from 'vitest';
import { WebSocket } from 'ws';
import {
  WORKER_DEFAULTS,
  WORKER_SECTIONS,
  workerSection,
  type WorkerSectionConfig,
} from '../../src/config/schema.js';
import { deserialize } from '../../src/protocol/codec.js';
import { FleetError } from '../../src/protocol/errors.js';
import {
  PROTOCOL_VERSION,
  WorkerToManagerSchema,
  type ErrorMessage,
  type Heartbeat,
  type Hello,
  type ManagerToWorker,
  type TaskErrorMessage,
  type TaskProgress,
  type TaskResult,
  type WorkerToManager,
} from '../../src/protocol/messages.js';
import { resultMismatch } from './result-schemas.js';
import { WorkerServer, type WorkerServerOptions } from '../../src/workers/common/server.js';
import type { WorkerKind } from '../../src/workers/common/worker-kind.js';

export type TaskAnswer = TaskResult | TaskErrorMessage;

export interface AssignOptions {
  timeoutMs?: number;
  sessionId?: string;
  taskId?: string;
  attempt?: number;
  leaseToken?: string;
}

export interface FakeManager {
  hello: Hello;
  socket: WebSocket;
  /** Every valid frame received, in order. */
  received: WorkerToManager[];
  /** Frames from the worker that failed the protocol schema. */
  violations: string[];
  /** Sends task.assign and resolves with the matching task.result / task.error (rejects if the socket closes first). */
  assign(capability: string, payload: unknown, options?: AssignOptions): Promise<TaskAnswer>;
  /** Sends task.assign with the given ids and returns the answer promise plus the ids used. */
  dispatch(
    capability: string,
    payload: unknown,
    options?: AssignOptions,
  ): { taskId: string; leaseToken: string; answer: Promise<TaskAnswer> };
  onProgress(taskId: string, cb: (progress: TaskProgress) => void): void;
  cancel(taskId: string, reason?: string, leaseToken?: string): void;
  drain(reason?: string): void;
  send(message: ManagerToWorker): void;
  sendRaw(frame: string | Buffer): void;
  /** The next `error` frame not yet consumed (including ones already received). */
  nextError(timeoutMs?: number): Promise<ErrorMessage>;
  nextHeartbeat(timeoutMs?: number): Promise<Heartbeat>;
  closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  token?: string;
  /** Put the token in `?token=` instead of the Authorization header. */
  tokenInQuery?: boolean;
  /** The protocol version our welcome claims. @default PROTOCOL_VERSION */
  protocolVersion?: number;
  heartbeatIntervalMs?: number;
  /** false: connect and read hello but send no welcome (to test pre-handshake behaviour). */
  welcome?: boolean;
  /** How long to wait for hello and the first heartbeat. @default 5000 */
  timeoutMs?: number;
}

/**
 * Connects, reads `hello`, answers `welcome` and waits for the first heartbeat (the worker's sign that it
 * accepted the welcome). Rejects with a FleetError carrying the worker's error code (`unauthorized`,
 * `protocol_mismatch`) and `details.closeCode` when the worker refuses the connection.
 */
export function connectFakeManager(endpoint: string, options: ConnectOptions = {}): Promise<FakeManager> {
  const url = new URL(endpoint);
  if (options.token && options.tokenInQuery) url.searchParams.set('token', options.token);
  const headers =
    options.token && !options.tokenInQuery ? { authorization: `Bearer ${options.token}` } : undefined;
  const socket = new WebSocket(url, { headers });
  const received: WorkerToManager[] = [];
  const violations: string[] = [];
  const errors: ErrorMessage[] = [];
  const heartbeats: Heartbeat[] = [];
  const waiters = new Set<() => void>();
  // Unanswered dispatches by `taskId \0 leaseToken` (one task may have several leases in flight).
  const pending = new Map<
    string,
    { capability: string; resolve: (a: TaskAnswer) => void; reject: (e: Error) => void }
  >();
  const progressListeners = new Map<string, ((p: TaskProgress) => void)[]>();
  let errorCursor = 0;
  let heartbeatCursor = 0;
  let hello: Hello | undefined;
  let closeInfo: { code: number; reason: string } | undefined;

  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const waitFor = <T>(pick: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const value = pick();
        if (value !== undefined) {
          cleanup();
          resolve(value);
        } else if (closeInfo) {
          cleanup();
          reject(
            new FleetError(
              'worker_lost',
              `socket closed (${closeInfo.code} ${closeInfo.reason}) while waiting for ${what}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString('utf8') };
      for (const [key, p] of pending) {
        const taskId = key.split('\u0000')[0];
        p.reject(new FleetError('worker_lost', `socket closed (${code}) before task ${taskId} was answered`));
      }
      pending.clear();
      notify();
      resolve(closeInfo);
    });
  });
  socket.on('error', () => undefined);
  socket.on('message', (data: Buffer) => {
    const decoded = deserialize(data, WorkerToManagerSchema, Number.MAX_SAFE_INTEGER);
    if (!decoded.ok) {
      violations.push(`${decoded.error.code}: ${decoded.error.message}`);
      notify();
      return;
    }
    const message = decoded.message;
    received.push(message);
    switch (message.type) {
      case 'hello':
        hello = message;
        break;
      case 'error':
        errors.push(message);
        break;
      case 'heartbeat':
        heartbeats.push(message);
        break;
      case 'task.progress':
        for (const cb of progressListeners.get(message.taskId) ?? []) cb(message);
        break;
      case 'task.result':
      case 'task.error': {
        const key = `${message.taskId}\u0000${message.leaseToken}`;
        const p = pending.get(key);
        if (p) {
          pending.delete(key);
          const mismatch =
            message.type === 'task.result'
              ? resultMismatch(hello?.describes, p.capability, message.output)
              : undefined;
          if (mismatch) {
            violations.push(mismatch);
            p.reject(new Error(mismatch));
          } else p.resolve(message);
        }
        break;
      }
    }
    notify();
  });

  const send = (message: ManagerToWorker) => socket.send(JSON.stringify(message));
  const timeoutMs = options.timeoutMs ?? 5_000;

  const dispatch: FakeManager['dispatch'] = (capability, payload, o = {}) => {
    const taskId = o.taskId ?? `t-${randomUUID()}`;
    const leaseToken = o.leaseToken ?? `l-${randomUUID()}`;
    const taskTimeout = o.timeoutMs ?? 30_000;
    const answer = new Promise<TaskAnswer>((resolve, reject) => {
      if (closeInfo) {
        reject(new FleetError('worker_lost', 'socket is closed'));
        return;
      }
      pending.set(`${taskId}\u0000${leaseToken}`, { capability, resolve, reject });
    });
    // Callers may await the answer late (after the socket closed on purpose); never an unhandled rejection.
    answer.catch(() => undefined);
    send({
      type: 'task.assign',
      taskId,
      attempt: o.attempt ?? 1,
      leaseToken,
      capability,
      payload,
      deadline: Date.now() + taskTimeout,
      timeoutMs: taskTimeout,
      ...(o.sessionId ? { sessionId: o.sessionId } : {}),
    });
    return { taskId, leaseToken, answer };
  };

  const manager = (): FakeManager => ({
    hello: hello!,
    socket,
    received,
    violations,
    assign: (capability, payload, o) => dispatch(capability, payload, o).answer,
    dispatch,
    onProgress(taskId, cb) {
      const list = progressListeners.get(taskId) ?? [];
      list.push(cb);
      progressListeners.set(taskId, list);
    },
    cancel(taskId, reason, leaseToken) {
      send({
        type: 'task.cancel',
        taskId,
        ...(reason ? { reason } : {}),
        ...(leaseToken ? { leaseToken } : {}),
      });
    },
    drain(reason) {
      send({ type: 'drain', ...(reason ? { reason } : {}) });
    },
    send,
    sendRaw(frame) {
      socket.send(frame);
    },
    nextError(ms = timeoutMs) {
      return waitFor(
        () => (errorCursor < errors.length ? errors[errorCursor++] : undefined),
        ms,
        'an error frame',
      );
    },
    nextHeartbeat(ms = timeoutMs) {
      return waitFor(
        () => (heartbeatCursor < heartbeats.length ? heartbeats[heartbeatCursor++] : undefined),
        ms,
        'a heartbeat',
      );
    },
    closed,
    async close() {
      if (socket.readyState === WebSocket.CLOSED) return;
      socket.close(1000, 'test done');
      await closed;
    },
  });

  const refusal = (): FleetError | undefined => {
    const error = errors[0];
    if (!error || !closeInfo) return undefined;
    return FleetError.from({
      ...error.error,
      details: { ...error.error.details, closeCode: closeInfo.code },
    });
  };

  return (async () => {
    try {
      await waitFor(() => hello ?? refusal(), timeoutMs, 'hello');
      const early = refusal();
      if (early) throw early;
      if (options.welcome === false) return manager();
      send({
        type: 'welcome',
        protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION,
        managerId: 'fake-manager',
        heartbeatIntervalMs: options.heartbeatIntervalMs ?? 60_000,
      });
      // The first heartbeat comes right after an accepted welcome; a refusal is an error frame and a close.
      await waitFor(() => (heartbeats.length > 0 ? true : refusal()), timeoutMs, 'the first heartbeat');
      const refused = refusal();
      if (refused) throw refused;
      heartbeatCursor = 1;
      return manager();
    } catch (err) {
      if (socket.readyState === WebSocket.OPEN) socket.terminate();
      const refused = refusal();
      throw refused ?? err;
    }
  })();
}

/** The resolved config section for a kind, loopback and port 0, with overrides applied. */
export function workerConfig(
  workerType: string,
  overrides: Record<string, unknown> = {},
): WorkerSectionConfig {
  const key = (Object.keys(WORKER_DEFAULTS) as (keyof typeof WORKER_DEFAULTS)[]).find(
    (k) => WORKER_DEFAULTS[k].name === workerType,
  );
  const input = { host: '127.0.0.1', ...overrides, port: 0 };
  if (key) return WORKER_SECTIONS[key].parse(input);
  return workerSection({ ...WORKER_DEFAULTS.echo, name: workerType, capabilities: [] }).parse(input);
}

export interface StartedWorker {
  server: WorkerServer;
  endpoint: string;
  /** http://127.0.0.1:port, for /health and /metrics. */
  baseUrl: string;
  stop(): Promise<void>;
}

/** Starts a real WorkerServer for `kind` on 127.0.0.1, port 0, with a silent logger unless FLEET_LOG_LEVEL is set. */
export async function startWorker(
  kind: WorkerKind,
  configOverrides: Record<string, unknown> = {},
  serverOptions: Partial<Omit<WorkerServerOptions, 'kind' | 'config'>> = {},
): Promise<StartedWorker> {
  const config = workerConfig(kind.type, configOverrides);
  const server = new WorkerServer({
    kind,
    config,
    logger: pino({ level: process.env.FLEET_LOG_LEVEL ?? 'silent' }),
    ...serverOptions,
  });
  await server.start();
  return {
    server,
    endpoint: server.endpoint,
    baseUrl: `http://127.0.0.1:${server.port}`,
    stop: () => server.stop({ graceMs: 1_000 }),
  };
}

/**
 * For a describe block: a `startWorker` whose workers are all stopped after each test.
 * Call it at the top of the block (it registers the `afterEach`).
 */
export function useWorkers(): typeof startWorker {
  const started: StartedWorker[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((w) => w.stop()));
  });
  return async (...args) => {
    const w = await startWorker(...args);
    started.push(w);
    return w;
  };
}
