/**
 * The transport-agnostic heart of a worker: the handshake on each manager connection, task slots, deadlines,
 * cancellation, progress, results, heartbeats and drain. `WorkerServer` puts it behind HTTP + WebSockets;
 * unit tests drive it over `InMemoryTransport` pairs.
 *
 * Slot accounting. A slot is taken when a task is accepted and given back only when its handler's promise
 * settles, not when the task is answered. On a timeout, a cancel or a lost connection the runtime answers
 * `task.error` at once (the manager must not wait on a stuck handler), but a handler that ignores its
 * AbortSignal keeps its slot until it really returns. So the number of handlers running at the same time
 * can never exceed `max_concurrent_tasks`, even with misbehaving handlers; the cost is that such a worker
 * reports itself busy until they finish. Over capacity a task is refused with `busy` (retryable), never
 * queued here: the manager's queue is the only queue (late binding).
 */
import type { Logger } from 'pino';
import type { WorkerSectionConfig } from '../../config/schema.js';
import { FleetError, toFleetError, type ErrorCode } from '../../protocol/errors.js';
import { zodToFleetError } from '../../protocol/zod-error.js';
import {
  PROTOCOL_VERSION,
  type CapabilityDescriptor,
  type ErrorBody,
  type ManagerToWorker,
  type TaskAssign,
  type TaskCancel,
  type Welcome,
  type WireArtifact,
  type WorkerToManager,
} from '../../protocol/messages.js';
import { CLOSE_CODES, type Transport } from '../../protocol/transport.js';
import { describeHandlers } from './describe.js';
import type { WorkerMetrics, TaskOutcome } from './metrics.js';
import { ProgressCoalescer, type ProgressCoalescerOptions } from './progress-coalescer.js';
import type { Artifact, TaskContext, TaskHandler, TaskOutput, WorkerKind } from './worker-kind.js';

export type WorkerTransport = Transport<ManagerToWorker, WorkerToManager>;

export interface WorkerRuntimeOptions {
  kind: WorkerKind;
  config: WorkerSectionConfig;
  workerId: string;
  logger: Logger;
  metrics: WorkerMetrics;
  /** Results bigger than this are answered with `payload_too_large` instead of a frame the manager would refuse. */
  maxFrameBytes: number;
  /** Upper bound on the heartbeat period; the manager's `welcome.heartbeatIntervalMs` applies when shorter. */
  heartbeatIntervalMs?: number;
  progress?: ProgressCoalescerOptions;
  now?: () => number;
}

/** Fastest heartbeat a manager may ask for; protects the worker from a welcome that asks for 1 ms. */
export const MIN_HEARTBEAT_MS = 20;
// setTimeout fires at once for delays past 2^31-1 ms; a 30-day timeout must not mean "now".
const MAX_TIMER_MS = 2_147_483_647;
const MAX_ERROR_MESSAGE = 10_000;

type ConnectionState = 'awaiting_welcome' | 'ready' | 'closed';

interface Connection {
  id: number;
  managerId?: string;
  transport: WorkerTransport;
  state: ConnectionState;
  heartbeat: NodeJS.Timeout | undefined;
  cpuMark: { usage: NodeJS.CpuUsage; at: bigint };
  /** Task ids this connection's hello reported (running or finished): the ones its manager may take over. */
  reported: Set<string>;
}

interface RunningTask {
  assign: TaskAssign;
  connection: Connection;
  /**
   * Made when the handler first reads its signal: an AbortController costs a no-op task more than the rest
   * of its turn here (docs/performance.md, "Fourth pass"), and most handlers that finish at once never look.
   */
  controller: AbortController | undefined;
  /** Why the task was stopped, for a signal made after it was (it is made aborted). */
  abortReason: FleetError | undefined;
  coalescer: ProgressCoalescer;
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
  answered: boolean;
  /** Set while the task runs without a manager connection, waiting for one to take it over. */
  orphanTimer?: NodeJS.Timeout;
}

/** The answer of a task that finished while no manager was connected, kept for the next one. */
interface HeldAnswer {
  assign: TaskAssign;
  message: WorkerToManager;
  timer: NodeJS.Timeout;
}

export class WorkerRuntime {
  readonly capabilities: string[];
  /** The capabilities' self-descriptions, sent in every hello; built once. */
  readonly descriptors: CapabilityDescriptor[];
  private readonly handlers = new Map<string, TaskHandler>();
  private readonly connections = new Set<Connection>();
  /** Tasks not yet answered, by task id. */
  private readonly active = new Map<string, RunningTask>();
  /** Answers of tasks that finished without a manager connection, by task id (see reconnect_grace). */
  private readonly held = new Map<string, HeldAnswer>();
  private slotsHeld = 0;
  private draining = false;
  /** The drain came from the manager (so `resume` may undo it), not from this process stopping. */
  private drainedByManager = false;
  private nextConnectionId = 1;
  private idleWaiters: (() => void)[] = [];
  private readonly now: () => number;

  constructor(private readonly options: WorkerRuntimeOptions) {
    this.now = options.now ?? Date.now;
    const allowed = new Set(options.config.capabilities);
    for (const handler of options.kind.handlers) {
      if (allowed.size === 0 || allowed.has(handler.capability))
        this.handlers.set(handler.capability, handler);
    }
    this.capabilities = [...this.handlers.keys()];
    this.descriptors = describeHandlers(this.handlers.values(), (capability, err) =>
      options.logger.warn({ capability, err }, 'cannot describe a capability as JSON Schema; sending none'),
    );
    const unknown = [...allowed].filter((c) => !options.kind.handlers.some((h) => h.capability === c));
    if (unknown.length > 0) {
      options.logger.warn(
        { unknown, offered: options.kind.handlers.map((h) => h.capability) },
        'config lists capabilities this worker kind does not implement; ignoring them',
      );
    }
    options.metrics.maxConcurrency.set(this.maxConcurrency);
  }

  get maxConcurrency(): number {
    return this.options.config.max_concurrent_tasks;
  }

  /** Slots in use: handlers that have not yet returned (including ones already answered as timed out). */
  get inFlight(): number {
    return this.slotsHeld;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Tasks running without a manager connection, and answers held for the next manager (for tests). */
  get orphans(): { running: number; finished: number } {
    let running = 0;
    for (const task of this.active.values()) if (task.orphanTimer) running++;
    return { running, finished: this.held.size };
  }

  private get reconnectGraceMs(): number {
    return Math.min(this.options.config.reconnect_grace ?? 0, MAX_TIMER_MS);
  }

  /**
   * Takes over a fresh manager connection: says hello and waits for welcome. `prove` signs the manager's
   * nonce with the token (see protocol/worker-proof.ts) when both are present.
   */
  attach(transport: WorkerTransport, prove?: (workerId: string) => string): void {
    const connection: Connection = {
      id: this.nextConnectionId++,
      transport,
      state: 'awaiting_welcome',
      heartbeat: undefined,
      cpuMark: { usage: process.cpuUsage(), at: process.hrtime.bigint() },
      reported: new Set([...this.active.keys(), ...this.held.keys()]),
    };
    this.connections.add(connection);
    this.options.metrics.connections.set(this.connections.size);
    transport.onmessage = (message) => this.onMessage(connection, message);
    transport.onerror = (error) => {
      this.options.metrics.framesRejected.inc({ code: error.code });
      this.options.logger.debug(
        { code: error.code, err: error.message, connection: connection.id },
        'frame rejected',
      );
    };
    transport.onclose = (info) => this.onClose(connection, info.code, info.reason);
    this.send(connection, {
      type: 'hello',
      protocolVersion: PROTOCOL_VERSION,
      workerId: this.options.workerId,
      workerType: this.options.kind.type,
      capabilities: this.capabilities,
      maxConcurrency: this.maxConcurrency,
      version: this.options.kind.version,
      info: this.kindInfo(),
      ...(prove ? { proof: prove(this.options.workerId) } : {}),
      describes: this.descriptors,
      inFlight: [...this.active.values()].map(({ assign }) => leaseOf(assign)),
      ...(this.held.size > 0
        ? { finished: [...this.held.values()].map(({ assign }) => leaseOf(assign)) }
        : {}),
    });
  }

  /**
   * Stops taking tasks and waits (at most `timeoutMs`) for the running ones to finish.
   * @returns true when every slot was free before the timeout.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    // Any drain but the manager's own message (see onMessage) is for stopping, which `resume` must not undo.
    this.drainedByManager = false;
    if (!this.draining) {
      this.draining = true;
      this.options.logger.info({ inFlight: this.slotsHeld }, 'draining: no new tasks');
      for (const connection of this.connections)
        if (connection.state === 'ready') this.sendHeartbeat(connection);
    }
    return this.waitIdle(timeoutMs);
  }

  /** Takes tasks again after a manager's drain; a drain for stopping is not undone. */
  private resume(): void {
    if (!this.draining || !this.drainedByManager) return;
    this.draining = false;
    this.drainedByManager = false;
    this.options.logger.info('resumed: taking tasks again');
    for (const connection of this.connections)
      if (connection.state === 'ready') this.sendHeartbeat(connection);
  }

  /** Resolves true when no slot is held, false after `timeoutMs`. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.slotsHeld === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.idleWaiters = this.idleWaiters.filter((w) => w !== onIdle);
        resolve(idle);
      };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS));
      timer.unref();
      this.idleWaiters.push(onIdle);
    });
  }

  /** Aborts every unanswered task with `error` (each is answered at once; slots free as handlers return). */
  abortAll(error: FleetError): void {
    for (const task of [...this.active.values()]) this.abortTask(task, error);
  }

  /** Closes every manager connection (heartbeats stop; their tasks are aborted as "connection lost"). */
  async closeConnections(code: number, reason: string): Promise<void> {
    await Promise.all(
      [...this.connections].map((c) => c.transport.close(code, reason).catch(() => undefined)),
    );
  }

  private onMessage(connection: Connection, message: ManagerToWorker): void {
    if (connection.state === 'closed') return;
    switch (message.type) {
      case 'welcome':
        this.onWelcome(connection, message);
        return;
      case 'task.assign':
        this.onAssign(connection, message);
        return;
      case 'task.cancel':
        this.onCancel(message);
        return;
      case 'drain':
        this.options.logger.info({ reason: message.reason }, 'manager asked this worker to drain');
        {
          const fresh = !this.draining;
          void this.drain(Number.POSITIVE_INFINITY);
          if (fresh) this.drainedByManager = true;
        }
        return;
      case 'resume':
        this.resume();
        return;
      case 'error':
        this.options.logger.warn(
          { code: message.error.code, inReplyTo: message.inReplyTo, taskId: message.taskId },
          `manager reported an error: ${message.error.message}`,
        );
        return;
    }
  }

  private onWelcome(connection: Connection, welcome: Welcome): void {
    if (welcome.protocolVersion !== PROTOCOL_VERSION) {
      const error = new FleetError(
        'protocol_mismatch',
        `manager speaks protocol version ${welcome.protocolVersion}, this worker speaks version ${PROTOCOL_VERSION}`,
        { details: { managerVersion: welcome.protocolVersion, workerVersion: PROTOCOL_VERSION } },
      );
      this.options.metrics.framesRejected.inc({ code: error.code });
      this.options.logger.error({ managerId: welcome.managerId }, error.message);
      this.send(connection, { type: 'error', error: error.toJSON(), inReplyTo: 'welcome' });
      connection.state = 'closed';
      void connection.transport.close(CLOSE_CODES.protocolMismatch, 'protocol version mismatch');
      return;
    }
    connection.state = 'ready';
    connection.managerId = welcome.managerId;
    this.yieldTo(connection);
    this.handOver(connection);
    const asked = Math.max(MIN_HEARTBEAT_MS, welcome.heartbeatIntervalMs);
    const period = Math.min(asked, this.options.heartbeatIntervalMs ?? asked, MAX_TIMER_MS);
    if (connection.heartbeat) clearInterval(connection.heartbeat);
    connection.heartbeat = setInterval(() => this.sendHeartbeat(connection), period);
    connection.heartbeat.unref();
    this.options.logger.info({ managerId: welcome.managerId, heartbeatMs: period }, 'manager connected');
    this.sendHeartbeat(connection);
  }

  /**
   * One owner at a time. A manager dials only after taking the worker's ownership lease, so the newest
   * welcome comes from the rightful owner; a connection of any other manager still open here belongs to one
   * that lost the lease and has not noticed yet (paused, cut off from Redis). It is closed before the new
   * owner can send a task, so the two never dispatch into the same slots (no `busy`). Its tasks run on as
   * orphans; the new owner's hello reported them, and handOver gives them to it.
   */
  private yieldTo(owner: Connection): void {
    for (const other of [...this.connections]) {
      if (other === owner || other.managerId === undefined || other.managerId === owner.managerId) continue;
      this.options.logger.warn(
        { previous: other.managerId, next: owner.managerId },
        'another manager took ownership of this worker; closing the previous manager connection',
      );
      other.state = 'closed';
      void other.transport.close(CLOSE_CODES.replaced, 'another manager owns this worker now');
      this.onClose(other, CLOSE_CODES.replaced, 'replaced by another manager');
    }
  }

  /**
   * The tasks this connection's hello reported go to its manager: orphans run on with their answers sent
   * here, held answers are sent now. The manager reconciles each against its store: a lease still current is
   * taken over (the result committed, the running task watched again), any other gets a `task.cancel`.
   * Tasks the hello did not report (they were assigned after it went out) stay orphans: this manager has
   * no record of them.
   */
  private handOver(connection: Connection): void {
    let running = 0;
    let finished = 0;
    for (const task of this.active.values()) {
      if (!task.orphanTimer || !connection.reported.has(task.assign.taskId)) continue;
      clearTimeout(task.orphanTimer);
      task.orphanTimer = undefined;
      task.connection = connection;
      running++;
    }
    for (const [taskId, answer] of [...this.held]) {
      if (!connection.reported.has(taskId)) continue;
      clearTimeout(answer.timer);
      this.held.delete(taskId);
      this.send(connection, answer.message);
      finished++;
    }
    if (running + finished > 0)
      this.options.logger.info(
        { managerId: connection.managerId, running, finished },
        'handed tasks from a lost manager connection over to this one',
      );
  }

  private onAssign(connection: Connection, assign: TaskAssign): void {
    const receivedAt = this.now();
    const duplicate = this.active.get(assign.taskId);
    if (duplicate && duplicate.assign.leaseToken === assign.leaseToken) {
      // A re-sent dispatch (for example after a manager retry of the send); the first one is still running.
      this.options.logger.debug({ taskId: assign.taskId }, 'duplicate task.assign ignored');
      return;
    }
    if (connection.state !== 'ready') {
      this.refuse(
        connection,
        assign,
        new FleetError('conflict', 'task.assign before welcome: the handshake is not complete', {
          retryable: true,
        }),
      );
      return;
    }
    if (duplicate) {
      this.abortTask(
        duplicate,
        new FleetError(
          'cancelled',
          `superseded by a new lease (attempt ${assign.attempt}) for the same task`,
        ),
      );
    }
    const handler = this.handlers.get(assign.capability);
    if (!handler) {
      this.refuse(
        connection,
        assign,
        new FleetError(
          'unknown_capability',
          `this ${this.options.kind.type} worker has no capability "${assign.capability}" (it offers: ${this.capabilities.join(', ') || 'none'})`,
        ),
      );
      return;
    }
    const parsed = handler.payloadSchema.safeParse(assign.payload);
    if (!parsed.success) {
      this.refuse(
        connection,
        assign,
        zodToFleetError(parsed.error, 'invalid_payload', `invalid payload for "${assign.capability}" at`),
      );
      return;
    }
    if (this.draining) {
      this.refuse(
        connection,
        assign,
        new FleetError('draining', 'this worker is draining and takes no new task'),
      );
      return;
    }
    if (this.slotsHeld >= this.maxConcurrency) {
      this.refuse(
        connection,
        assign,
        new FleetError('busy', `all ${this.maxConcurrency} task slots are in use`, {
          details: { inFlight: this.slotsHeld, maxConcurrency: this.maxConcurrency },
        }),
      );
      return;
    }
    this.run(connection, assign, handler, parsed.data, receivedAt);
  }

  private run(
    connection: Connection,
    assign: TaskAssign,
    handler: TaskHandler,
    payload: unknown,
    startedAt: number,
  ): void {
    const task: RunningTask = {
      assign,
      connection,
      controller: undefined,
      abortReason: undefined,
      startedAt,
      timer: undefined,
      answered: false,
      coalescer: new ProgressCoalescer((update) => {
        this.send(task.connection, {
          type: 'task.progress',
          taskId: assign.taskId,
          attempt: assign.attempt,
          leaseToken: assign.leaseToken,
          ...update,
        });
      }, this.options.progress),
    };
    this.active.set(assign.taskId, task);
    this.takeSlot();
    // Timed from receipt with timeoutMs, not from the absolute deadline: two hosts' clocks disagree.
    const timeoutMs = Math.min(assign.timeoutMs, MAX_TIMER_MS);
    task.timer = setTimeout(
      () =>
        this.abortTask(
          task,
          new FleetError('timeout', `task ran past its ${assign.timeoutMs} ms timeout and was stopped`),
        ),
      timeoutMs,
    );
    task.timer.unref();
    const parent = this.options.logger;
    // The task's child logger is made when the handler first logs: pino serializes a child's bindings when
    // it is created, a cost per task that most handlers (and every no-op) never use.
    let logger: Logger | undefined;
    const ctx: TaskContext = {
      taskId: assign.taskId,
      attempt: assign.attempt,
      capability: assign.capability,
      sessionId: assign.sessionId,
      get signal(): AbortSignal {
        if (!task.controller) {
          task.controller = new AbortController();
          if (task.abortReason) task.controller.abort(task.abortReason);
        }
        return task.controller.signal;
      },
      deadline: startedAt + assign.timeoutMs,
      progress: (update) => task.coalescer.push(update),
      get logger(): Logger {
        return (logger ??= parent.child({
          taskId: assign.taskId,
          attempt: assign.attempt,
          capability: assign.capability,
        }));
      },
    };
    if (parent.isLevelEnabled('debug')) ctx.logger.debug('task started');
    // Through .then so a handler that throws synchronously is handled like one that rejects.
    Promise.resolve()
      .then(() => handler.run(payload, ctx))
      .then(
        (output) => this.onHandlerDone(task, output, undefined),
        (err: unknown) => this.onHandlerDone(task, undefined, err),
      );
  }

  private onHandlerDone(task: RunningTask, output: TaskOutput | undefined, err: unknown): void {
    this.releaseSlot();
    if (task.answered) {
      this.options.logger.debug(
        { taskId: task.assign.taskId },
        'handler returned after its task was answered; outcome dropped',
      );
      return;
    }
    if (err !== undefined) {
      const error = toFleetError(err, 'handler_error');
      this.answerError(
        task,
        error,
        error.code === 'timeout' ? 'timed_out' : error.code === 'cancelled' ? 'cancelled' : 'failed',
      );
      return;
    }
    let message: WorkerToManager;
    try {
      message = this.resultMessage(task, output);
    } catch (e) {
      this.answerError(task, toFleetError(e, 'handler_error'), 'failed');
      return;
    }
    this.finish(task);
    this.deliver(task, message);
    this.observe(task, 'succeeded');
  }

  private resultMessage(task: RunningTask, output: TaskOutput | undefined): WorkerToManager {
    if (output === null || typeof output !== 'object') {
      throw new FleetError(
        'handler_error',
        `the "${task.assign.capability}" handler returned no result object`,
      );
    }
    const artifacts = (output.artifacts ?? []).map(toWireArtifact);
    let size = 1024;
    try {
      size += Buffer.byteLength(JSON.stringify(output.output ?? null));
    } catch (e) {
      throw new FleetError(
        'handler_error',
        `the task output is not JSON-serializable: ${(e as Error).message}`,
      );
    }
    for (const artifact of artifacts)
      size += artifact.data.length + artifact.name.length + artifact.contentType.length + 100;
    if (size > this.options.maxFrameBytes) {
      throw new FleetError(
        'payload_too_large',
        `the result is about ${size} bytes on the wire, over the ${this.options.maxFrameBytes}-byte frame limit`,
        { details: { size, limit: this.options.maxFrameBytes } },
      );
    }
    return {
      type: 'task.result',
      taskId: task.assign.taskId,
      attempt: task.assign.attempt,
      leaseToken: task.assign.leaseToken,
      output: output.output ?? null,
      ...(artifacts.length > 0 ? { artifacts } : {}),
      durationMs: Math.max(0, this.now() - task.startedAt),
    };
  }

  private onCancel(cancel: TaskCancel): void {
    const task = this.active.get(cancel.taskId);
    if (!task || (cancel.leaseToken !== undefined && cancel.leaseToken !== task.assign.leaseToken)) return;
    this.abortTask(
      task,
      new FleetError('cancelled', cancel.reason ? `cancelled: ${cancel.reason}` : 'cancelled by the manager'),
    );
  }

  /** Tells the handler to stop: through its signal if it has read it, else through the signal it will read. */
  private abortHandler(task: RunningTask, reason: FleetError): void {
    task.abortReason ??= reason;
    task.controller?.abort(reason);
  }

  private abortTask(task: RunningTask, error: FleetError): void {
    if (task.answered) return;
    this.abortHandler(task, error);
    this.answerError(task, error, error.code === 'timeout' ? 'timed_out' : 'cancelled');
  }

  private answerError(task: RunningTask, error: FleetError, outcome: TaskOutcome): void {
    this.finish(task);
    this.deliver(task, {
      type: 'task.error',
      taskId: task.assign.taskId,
      attempt: task.assign.attempt,
      leaseToken: task.assign.leaseToken,
      error: errorBody(error),
      durationMs: Math.max(0, this.now() - task.startedAt),
    });
    this.observe(task, outcome);
  }

  /** Sends a task's answer, or holds it for the next manager when the task lost its connection. */
  private deliver(task: RunningTask, message: WorkerToManager): void {
    if (task.connection.state !== 'closed' || this.reconnectGraceMs === 0) {
      this.send(task.connection, message);
      return;
    }
    const heir = this.heirOf(task.assign.taskId);
    if (heir) {
      this.send(heir, message);
      return;
    }
    const taskId = task.assign.taskId;
    const previous = this.held.get(taskId);
    if (previous) clearTimeout(previous.timer);
    const timer = setTimeout(() => {
      if (this.held.get(taskId)?.timer !== timer) return;
      this.held.delete(taskId);
      this.options.logger.warn(
        { taskId, attempt: task.assign.attempt },
        'no manager took over a finished task within reconnect_grace; its answer is dropped',
      );
    }, this.reconnectGraceMs);
    timer.unref();
    this.held.set(taskId, { assign: task.assign, message, timer });
  }

  /** Marks the task answered: progress flushed and closed, timer off, no longer "active". */
  private finish(task: RunningTask): void {
    task.answered = true;
    if (task.timer) clearTimeout(task.timer);
    if (task.orphanTimer) clearTimeout(task.orphanTimer);
    task.orphanTimer = undefined;
    task.coalescer.close();
    if (this.active.get(task.assign.taskId) === task) this.active.delete(task.assign.taskId);
  }

  private refuse(connection: Connection, assign: TaskAssign, error: FleetError): void {
    this.options.logger.debug({ taskId: assign.taskId, code: error.code }, `task refused: ${error.message}`);
    this.send(connection, {
      type: 'task.error',
      taskId: assign.taskId,
      attempt: assign.attempt,
      leaseToken: assign.leaseToken,
      error: errorBody(error),
      durationMs: 0,
    });
    this.options.metrics.tasks.inc({
      capability: this.capabilityLabel(assign.capability),
      outcome: 'rejected',
    });
  }

  private observe(task: RunningTask, outcome: TaskOutcome): void {
    const labels = { capability: task.assign.capability, outcome };
    this.options.metrics.tasks.inc(labels);
    this.options.metrics.duration.observe(labels, Math.max(0, this.now() - task.startedAt) / 1000);
  }

  /** Unknown capabilities are client input; they must not create unbounded label values. */
  private capabilityLabel(capability: string): string {
    return this.handlers.has(capability) ? capability : '(unknown)';
  }

  private takeSlot(): void {
    this.slotsHeld++;
    this.options.metrics.inFlight.set(this.slotsHeld);
  }

  private releaseSlot(): void {
    this.slotsHeld--;
    this.options.metrics.inFlight.set(this.slotsHeld);
    if (this.slotsHeld === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  private onClose(connection: Connection, code: number, reason: string): void {
    if (!this.connections.delete(connection)) return;
    connection.state = 'closed';
    if (connection.heartbeat) clearInterval(connection.heartbeat);
    this.options.metrics.connections.set(this.connections.size);
    const lost = [...this.active.values()].filter((t) => t.connection === connection);
    const graceMs = this.reconnectGraceMs;
    this.options.logger.info(
      {
        code,
        reason,
        ...(graceMs > 0 ? { tasksKept: lost.length, graceMs } : { tasksAborted: lost.length }),
      },
      'manager connection closed',
    );
    for (const task of lost) {
      if (graceMs === 0) {
        this.dropOrphan(task, 'manager connection lost');
        continue;
      }
      // The close can be read after a newer connection was welcomed (both waited while this process was
      // stopped); that one reported the task and takes it.
      const heir = this.heirOf(task.assign.taskId);
      if (heir) {
        task.connection = heir;
        continue;
      }
      // A dropped connection is not a cancel: the task runs on (its own timeout still applies) for a
      // manager, this one back or another sharing the store, to take over rather than run it again.
      task.orphanTimer = setTimeout(
        () => this.dropOrphan(task, `no manager took the task over within ${graceMs} ms`),
        graceMs,
      );
      task.orphanTimer.unref();
    }
  }

  /** A welcomed connection whose hello reported the task: the manager that reconciles it. */
  private heirOf(taskId: string): Connection | undefined {
    for (const c of this.connections) if (c.state === 'ready' && c.reported.has(taskId)) return c;
    return undefined;
  }

  private dropOrphan(task: RunningTask, reason: string): void {
    if (task.answered) return;
    this.abortHandler(task, new FleetError('cancelled', reason));
    this.finish(task);
    this.observe(task, 'cancelled');
  }

  private sendHeartbeat(connection: Connection): void {
    if (connection.state !== 'ready') return;
    const usage = process.cpuUsage();
    const at = process.hrtime.bigint();
    const cpuMicros =
      usage.user - connection.cpuMark.usage.user + (usage.system - connection.cpuMark.usage.system);
    const wallMicros = Number(at - connection.cpuMark.at) / 1000;
    connection.cpuMark = { usage, at };
    const info = this.kindInfo();
    this.send(connection, {
      type: 'heartbeat',
      inFlight: this.slotsHeld,
      cpu: wallMicros > 0 ? Math.max(0, cpuMicros / wallMicros) : 0,
      memory: process.memoryUsage.rss(),
      draining: this.draining,
      ...(info ? { info } : {}),
    });
  }

  private kindInfo(): Record<string, unknown> | undefined {
    try {
      return this.options.kind.info?.();
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'kind.info() threw');
      return undefined;
    }
  }

  private send(connection: Connection, message: WorkerToManager): void {
    if (connection.state === 'closed' || !connection.transport.isOpen) return;
    connection.transport.send(message).catch((err: unknown) => {
      this.options.logger.debug({ type: message.type, err: (err as Error).message }, 'send failed');
    });
  }
}

function leaseOf(assign: TaskAssign): { taskId: string; attempt: number; leaseToken: string } {
  return { taskId: assign.taskId, attempt: assign.attempt, leaseToken: assign.leaseToken };
}

function toWireArtifact(artifact: Artifact): WireArtifact {
  if (
    !artifact ||
    typeof artifact.name !== 'string' ||
    !artifact.name ||
    !(artifact.data instanceof Uint8Array)
  ) {
    throw new FleetError('handler_error', 'an artifact needs a name and its data as a Buffer');
  }
  const data = Buffer.from(artifact.data.buffer, artifact.data.byteOffset, artifact.data.byteLength);
  return {
    name: artifact.name.slice(0, 255),
    contentType: (artifact.contentType || 'application/octet-stream').slice(0, 200),
    size: data.length,
    encoding: 'base64',
    data: data.toString('base64'),
  };
}

/** What goes on the wire for an error: code, a bounded message, never a stack. */
export function errorBody(error: FleetError): ErrorBody {
  let details: Record<string, unknown> | undefined;
  if (error.details) {
    try {
      const text = JSON.stringify(error.details);
      details =
        text.length <= 64 * 1024 ? (JSON.parse(text) as Record<string, unknown>) : { truncated: true };
    } catch {
      details = undefined;
    }
  }
  return {
    code: error.code satisfies ErrorCode,
    message: error.message.slice(0, MAX_ERROR_MESSAGE),
    retryable: error.retryable,
    ...(details ? { details } : {}),
  };
}
