/**
 * The composition root: WorkerManager wires the registry, discovery, dispatcher, health monitor, queue and
 * metrics, and exposes the spec's operations (registerWorker, executeTask, getWorkerStatus,
 * redistributeTasks) plus what the API needs.
 *
 * Discovery (where workers are, who owns each, when to dial again) lives in discovery/discovery.ts.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { pino, type Logger } from 'pino';
import { WORKER_DEFAULTS, type FleetConfig, type WorkerSectionKey } from '../config/schema.js';
import { FleetError } from '../protocol/errors.js';
import { checkJsonLimits, type JsonLimits } from '../protocol/json-limits.js';
import { MemoryArtifactStore, type ArtifactStore } from './artifacts/artifact-store.js';
import { createStrategy } from './balancing/index.js';
import { CapabilityCatalog, type CatalogChange } from './catalog/capability-catalog.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { RealWebSocketWorkerInterface, type WorkerConnection } from './connect/worker-interface.js';
import {
  WorkerDiscovery,
  type ConnectingInterface,
  type RegisterWorkerConfig,
} from './discovery/discovery.js';
import { Dispatcher, type ProgressEvent } from './dispatch/dispatcher.js';
import { FinalWaiters, type FinalWaiter } from './final-waiters.js';
import { HealthMonitor } from './health/health-monitor.js';
import { ManagerMetrics } from './metrics/manager-metrics.js';
import { OperatorEventLog, type OperatorEvent } from './operator-events.js';
import { MemoryTaskQueue } from './queue/memory-task-queue.js';
import type { TaskEvent, TaskFilter, TaskQueue } from './queue/task-queue.js';
import { parseSubmission } from './queue/task-record.js';
import { isFinal, type TaskRecord, type TaskSubmission } from './queue/task.js';
import { normalizeEndpoint } from './discovery/endpoint.js';
import { loadByType, type TypeLoad } from './registry/fleet-load.js';
import { MemoryWorkerDirectory } from './registry/memory-worker-directory.js';
import type { WorkerDirectory, WorkerRecord } from './registry/worker-directory.js';
import type { WorkerStatus } from './registry/worker-info.js';
import {
  statusOf,
  viewOf,
  WorkerRegistry,
  type RegistryEvent,
  type WorkerStatusView,
} from './registry/worker-registry.js';
import { logDestination } from '../workers/common/logger.js';

export type { ConnectingInterface, RegisterWorkerConfig } from './discovery/discovery.js';

export interface WorkerManagerDeps {
  queue?: TaskQueue;
  directory?: WorkerDirectory;
  workerInterface?: ConnectingInterface;
  artifacts?: ArtifactStore;
  clock?: Clock;
  logger?: Logger;
  /** Restarts a supervised worker process (fleet up); absent when Fleet does not own the process. */
  restartWorker?: (worker: WorkerStatusView) => Promise<boolean>;
}

/** What a graceful stop did with the work it could not finish. */
export interface ShutdownReport {
  /** Tasks still waiting in the queue at the end of the grace. */
  queued: number;
  /** Tasks still running on workers when the grace ran out. */
  running: number;
  /** true: the Redis store keeps both for other managers; false: the memory store loses them. */
  handedBack: boolean;
}

export type ManagerEvent =
  | { type: 'task'; event: TaskEvent }
  | { type: 'worker'; kind: RegistryEvent['kind']; worker: WorkerStatusView }
  | { type: 'progress'; progress: ProgressEvent }
  | ({ type: 'catalog'; at: number } & CatalogChange)
  | OperatorEvent;

/** What a subscriber wants of the manager's events (`subscribe`); by default every event. */
export interface SubscribeOptions {
  /** Only events of these types. */
  types?: readonly ManagerEvent['type'][];
  /**
   * `changes`: a worker's `updated` event only when its status changed, not for every heartbeat, dispatch
   * and result (each of which updates the worker). `registered` and `unregistered` always come.
   * @default 'all'
   */
  workerUpdates?: 'all' | 'changes';
}

interface Subscription {
  listener: (event: ManagerEvent) => void;
  types: ReadonlySet<ManagerEvent['type']> | undefined;
  everyWorkerUpdate: boolean;
}

const SECTION_KEYS = Object.keys(WORKER_DEFAULTS) as WorkerSectionKey[];

interface SectionLookup {
  timeouts: Map<string, number>;
  idempotent: Set<string>;
}

/** The first section listing a capability gives its timeout, as the sections are ordered. */
function sectionLookup(config: FleetConfig): SectionLookup {
  const timeouts = new Map<string, number>();
  const idempotent = new Set<string>();
  for (const key of SECTION_KEYS) {
    const section = config[key];
    for (const capability of section.capabilities)
      if (!timeouts.has(capability)) timeouts.set(capability, section.timeout);
    for (const capability of section.idempotent) idempotent.add(capability);
  }
  return { timeouts, idempotent };
}

export { normalizeEndpoint } from './discovery/endpoint.js';

/** Tasks one `submitMany` (POST /api/tasks:batch) may carry. */
export const MAX_BATCH = 1000;

/** Long enough for every attempt the task may make, plus a margin for queueing. */
const defaultWaitMs = (task: TaskRecord): number => task.timeoutMs * task.maxAttempts + 5000;

export class WorkerManager {
  readonly id: string;
  // The collaborators are the manager's own: callers use the methods below (the public surface, listed in
  // docs/architecture.md), so the rooms can change without every caller changing with them.
  private readonly registry: WorkerRegistry;
  /** Per capability, its section's timeout and idempotence (asked on every submission and failure). */
  private readonly sections: SectionLookup;
  private readonly dispatcher: Dispatcher;
  private readonly healthMonitor: HealthMonitor;
  readonly metrics: ManagerMetrics;
  private readonly queue: TaskQueue;
  private readonly directory: WorkerDirectory;
  readonly artifacts: ArtifactStore;
  readonly logger: Logger;
  readonly clock: Clock;
  private readonly workerInterface: ConnectingInterface;
  /**
   * Replaced, never changed in place, on (un)subscribe: an event goes to the subscribers of the moment it
   * was published, as with an EventEmitter.
   */
  private subscriptions: readonly Subscription[] = [];
  /** The status each worker's last `updated` event showed, for subscribers of status changes only. */
  private readonly publishedStatus = new Map<string, WorkerStatus>();
  private readonly discovery: WorkerDiscovery;
  private readonly finalWaiters = new FinalWaiters();
  private capabilityIndex: { byType: Map<string, string[]>; known: Set<string> } | undefined;
  /** Per worker, the capability list the index was last rebuilt for (by identity). */
  private readonly indexedCapabilities = new Map<string, readonly string[]>();
  private started = false;
  private readonly unsubscribers: (() => void)[] = [];
  private readonly payloadLimits: JsonLimits;
  /** Aborted when a graceful stop begins. */
  private readonly shutdownController = new AbortController();
  /**
   * Released when a graceful stop begins. A Set, not abort listeners: thousands of waiters come and go per
   * second, and EventTarget removes a listener in time linear in how many it holds.
   */
  private readonly shutdownWaiters = new Set<() => void>();
  private shuttingDown: Promise<ShutdownReport> | undefined;
  /** The last scaling decisions and alerts, for `GET /api/scaling` and `GET /api/alerts`. */
  readonly operatorEvents = new OperatorEventLog();
  /** What the connected workers describe; checks payloads at submit (issue 18). */
  readonly catalog = new CapabilityCatalog();

  constructor(
    readonly config: FleetConfig,
    private readonly deps: WorkerManagerDeps = {},
  ) {
    const m = config.manager;
    this.sections = sectionLookup(config);
    if (m.store === 'redis' && (!deps.queue || !deps.directory)) {
      // The Redis stores are opened by createManagerStores (serveManager does it for `fleet manager` and
      // `fleet up`); never fall back to memory silently: a user who asked for Redis expects shared state.
      throw new FleetError(
        'config_invalid',
        'manager.store: redis needs the shared queue and directory: start the manager with serveManager or pass createManagerStores(config).deps',
      );
    }
    this.id = m.id ?? `manager-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.clock = deps.clock ?? systemClock;
    this.payloadLimits = {
      maxBytes: m.submission.max_bytes,
      maxDepth: m.submission.max_depth,
      maxKeys: m.submission.max_keys,
      maxStringLength: m.submission.max_string_length,
    };
    this.logger = deps.logger ?? pino({ level: m.log_level, base: { managerId: this.id } }, logDestination());
    this.registry = new WorkerRegistry(() => this.clock.now());
    this.queue =
      deps.queue ??
      new MemoryTaskQueue({
        maxQueued: m.queue.max_size,
        retainFinished: m.queue.retain_finished,
        defaultMaxAttempts: m.retries.max_attempts,
        timeoutMs: (capability) => this.timeoutFor(capability),
        backoffMs: m.retries.backoff,
        maxBackoffMs: m.retries.max_backoff,
        now: () => this.clock.now(),
      });
    this.directory = deps.directory ?? new MemoryWorkerDirectory(() => this.clock.now());
    this.artifacts = deps.artifacts ?? new MemoryArtifactStore();
    this.workerInterface =
      deps.workerInterface ??
      new RealWebSocketWorkerInterface({
        managerId: this.id,
        heartbeatIntervalMs: m.health.heartbeat_interval,
        maxFrameBytes: m.max_frame_bytes,
        ...((m.worker_token ?? m.token) ? { token: m.worker_token ?? m.token } : {}),
      });
    this.metrics = new ManagerMetrics({
      queue: this.queue,
      workers: () => this.getWorkerStatus(),
      capabilitiesByType: () => this.capabilitiesByType(),
    });
    this.dispatcher = new Dispatcher({
      queue: this.queue,
      registry: this.registry,
      workers: this.workerInterface,
      strategy: createStrategy(m.strategy),
      artifacts: this.artifacts,
      clock: this.clock,
      logger: this.logger,
      metrics: this.metrics,
      outputLimits: { ...this.payloadLimits, maxBytes: m.max_frame_bytes },
      isIdempotent: (capability) => this.isIdempotent(capability),
      // A lost worker's tasks wait one liveness window for it to come back and report them (or less: a
      // failed dial of it ends the wait).
      reconnectHoldMs: m.health.heartbeat_interval * m.health.missed_heartbeats,
      onHold: (workerId) => this.discovery.redial(workerId),
    });
    this.healthMonitor = new HealthMonitor({
      registry: this.registry,
      dispatcher: this.dispatcher,
      clock: this.clock,
      logger: this.logger,
      policy: {
        heartbeatIntervalMs: m.health.heartbeat_interval,
        missedHeartbeats: m.health.missed_heartbeats,
        unhealthyThreshold: m.health.unhealthy_threshold,
      },
      intervalMs: m.health.interval,
      timeoutMs: m.health.timeout,
      restart: async (workerId) => {
        const worker = this.registry.get(workerId);
        if (!worker || !this.deps.restartWorker) return false;
        return this.deps.restartWorker(viewOf(worker, this.clock.now()));
      },
    });
    this.discovery = new WorkerDiscovery({
      id: this.id,
      config,
      clock: this.clock,
      logger: this.logger,
      directory: this.directory,
      registry: this.registry,
      dispatcher: this.dispatcher,
      workerInterface: this.workerInterface,
      publishEvent: (event) => this.publishEvent(event),
      admitCapabilities: (endpoint, connection) => this.admitToCatalog(endpoint, connection),
      registered: () => this.announceCatalogChange(),
      describesOf: (workerId) => this.catalog.published(workerId),
      // Only a shared directory holds workers other managers connect to.
      ...(m.store === 'redis' ? { afterRound: () => this.syncFleetCatalog() } : {}),
    });
    this.unsubscribers.push(
      this.queue.subscribe((event) => {
        if (isFinal(event.task.state)) this.finalWaiters.settle(event.task);
        if (this.wants('task')) this.publish({ type: 'task', event } satisfies ManagerEvent);
      }),
      this.registry.subscribe((e) => {
        // Capabilities change only when a worker (re)registers or leaves: a re-registration brings a new
        // record with its own capability list, while heartbeats, dispatches and results touch the same one.
        const id = e.worker.workerId;
        if (e.kind === 'unregistered') this.indexedCapabilities.delete(id);
        if (e.kind !== 'updated' || this.indexedCapabilities.get(id) !== e.worker.capabilities) {
          if (e.kind !== 'unregistered') this.indexedCapabilities.set(id, e.worker.capabilities);
          this.capabilityIndex = undefined;
        }
        this.trackCatalog(e);
        // Heartbeats, dispatches and results update the registry: the view is built only for a subscriber
        // that wants this update.
        const changed = this.noteStatus(e);
        if (!this.wants('worker', changed)) return;
        this.publish(
          { type: 'worker', kind: e.kind, worker: viewOf(e.worker, this.clock.now()) } satisfies ManagerEvent,
          changed,
        );
      }),
      this.queue.onCorruptRecord?.((error) => {
        const key = (error.details as { key?: string } | undefined)?.key ?? 'unknown';
        this.logger.error({ key, err: error.message }, 'a record in the shared store failed validation');
        this.publishEvent({
          type: 'alert',
          at: this.clock.now(),
          level: 'error',
          kind: 'store_corrupt',
          key: `store_corrupt:${key}`,
          message: error.message,
        });
      }) ?? (() => undefined),
      this.dispatcher.onProgress((progress) => {
        if (this.wants('progress')) this.publish({ type: 'progress', progress } satisfies ManagerEvent);
      }),
    );
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.healthMonitor.startMonitoring();
    await this.discovery.start();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.discovery.stop();
    this.healthMonitor.stopMonitoring();
    await this.dispatcher.stop();
    await this.discovery.releaseAll();
    for (const u of this.unsubscribers) u();
    await this.queue.close();
    await this.directory.close();
  }

  /** Resolves once the store listens for other managers' task events (Redis); at once on the memory store. */
  async ready(): Promise<void> {
    const queue = this.queue as TaskQueue & { ready?: () => Promise<void> };
    if (typeof queue.ready === 'function') await queue.ready();
  }

  subscribe(listener: (event: ManagerEvent) => void, options: SubscribeOptions = {}): () => void {
    const sub: Subscription = {
      listener,
      types: options.types ? new Set(options.types) : undefined,
      everyWorkerUpdate: (options.workerUpdates ?? 'all') === 'all',
    };
    this.subscriptions = [...this.subscriptions, sub];
    return () => {
      this.subscriptions = this.subscriptions.filter((s) => s !== sub);
    };
  }

  /** Whether any subscriber takes an event of `type` (a worker's `updated` one: of a status change or not). */
  private wants(type: ManagerEvent['type'], statusChanged = true): boolean {
    for (const s of this.subscriptions) {
      if (s.types && !s.types.has(type)) continue;
      if (type === 'worker' && !statusChanged && !s.everyWorkerUpdate) continue;
      return true;
    }
    return false;
  }

  /** `statusChanged` false: a worker `updated` event that showed no new status (see SubscribeOptions). */
  private publish(event: ManagerEvent, statusChanged = true): void {
    const quiet = event.type === 'worker' && event.kind === 'updated' && !statusChanged;
    for (const s of this.subscriptions) {
      if (s.types && !s.types.has(event.type)) continue;
      if (quiet && !s.everyWorkerUpdate) continue;
      s.listener(event);
    }
  }

  /** Records the status a registry event leaves its worker in; true when it is new (always for (un)registering). */
  private noteStatus(e: RegistryEvent): boolean {
    const id = e.worker.workerId;
    if (e.kind === 'unregistered') {
      this.publishedStatus.delete(id);
      return true;
    }
    const status = statusOf(e.worker);
    const changed = e.kind !== 'updated' || this.publishedStatus.get(id) !== status;
    this.publishedStatus.set(id, status);
    return changed;
  }

  /** Publishes a scaling decision or an alert from outside the core (fleet up's autoscaler and supervisor). */
  publishEvent(event: OperatorEvent): void {
    this.operatorEvents.record(event);
    this.publish(event satisfies ManagerEvent);
  }

  // --- the spec's operations ---

  /** Adds a worker endpoint and dials it now. Resolves with the worker id once connected. */
  registerWorker(
    config: RegisterWorkerConfig,
  ): Promise<{ endpoint: string; workerId?: string; error?: string; code?: string }> {
    return this.discovery.registerWorker(config);
  }

  /** Submits a task and waits for its final state. */
  async executeTask(submission: TaskSubmission, options: { signal?: AbortSignal } = {}): Promise<TaskRecord> {
    const { task } = await this.submit(submission);
    return this.waitForTask(task.id, { ...options });
  }

  async getWorkerStatus(): Promise<WorkerStatusView[]> {
    const local = this.registry.views();
    const seen = new Set(local.map((w) => w.workerId));
    const remote = (await this.directory.list().catch(() => [] as WorkerRecord[]))
      .filter((r) => !seen.has(r.workerId))
      .map((r) => recordToView(r));
    return [...local, ...remote].sort(
      (a, b) => a.workerType.localeCompare(b.workerType) || a.workerId.localeCompare(b.workerId),
    );
  }

  /** The workers this manager holds (connected, or offline and error ones not yet removed). */
  localWorkers(): WorkerStatusView[] {
    return this.registry.views();
  }

  /** A worker this manager is connected to (or was: offline and error workers stay until they are removed). */
  worker(workerId: string): WorkerStatusView | undefined {
    const w = this.registry.get(workerId);
    return w ? viewOf(w, this.clock.now()) : undefined;
  }

  /** The worker of this manager reached through `endpoint` (any form normalizeEndpoint accepts). */
  workerAt(endpoint: string): WorkerStatusView | undefined {
    const normalized = normalizeEndpoint(endpoint);
    const w = this.registry.list().find((x) => x.endpoint === normalized);
    return w ? viewOf(w, this.clock.now()) : undefined;
  }

  /** Load and capacity per worker type of this manager's workers (registry/fleet-load.ts defines them). */
  loadByType(): Map<string, TypeLoad> {
    return loadByType(this.registry.views());
  }

  /** Tasks waiting, for one capability or in all. */
  queueDepth(capability?: string): Promise<number> {
    return this.queue.depth(capability);
  }

  /** Tasks this manager has on workers right now. */
  get inFlight(): number {
    return this.dispatcher.inFlight;
  }

  /**
   * Marks the worker at `endpoint` as `error` (a process its supervisor gave up on), so it shows as needing
   * a human rather than as an `offline` that looks like it will come back. No-op without such a worker.
   */
  async markWorkerError(endpoint: string): Promise<void> {
    const worker = this.workerAt(endpoint);
    if (worker && worker.status !== 'error') await this.registry.updateWorkerStatus(worker.workerId, 'error');
  }

  /** What `GET /health` reports. */
  async health(): Promise<{ workers: number; connected: number; queued: number }> {
    const workers = this.registry.list();
    return {
      workers: workers.length,
      connected: workers.filter((w) => this.dispatcher.isConnected(w.workerId)).length,
      queued: await this.queue.depth(),
    };
  }

  /** Re-queues the in-flight tasks of every worker that is not connected any more, then fills free slots. */
  async redistributeTasks(): Promise<void> {
    for (const w of this.registry.list()) {
      if (!this.dispatcher.isConnected(w.workerId))
        await this.dispatcher.workerLost(w.workerId, 'redistribution');
    }
    await this.dispatcher.pump();
  }

  // --- tasks ---

  async submit(input: unknown): Promise<{ task: TaskRecord; created: boolean }> {
    this.assertAccepting();
    return this.queue.submit(this.validateSubmission(input));
  }

  /**
   * Submits several tasks (fan-out): every one is validated, and the queue's room checked, before any is
   * stored, so a bad entry refuses the whole batch (the error names its index) instead of half of it.
   */
  async submitMany(inputs: unknown[]): Promise<{ task: TaskRecord; created: boolean }[]> {
    this.assertAccepting();
    if (inputs.length > MAX_BATCH) {
      throw new FleetError('invalid_task', `a batch holds at most ${MAX_BATCH} tasks, got ${inputs.length}`, {
        details: { limit: MAX_BATCH, count: inputs.length },
      });
    }
    const valid = inputs.map((input, index) => {
      try {
        return this.validateSubmission(input);
      } catch (err) {
        if (!(err instanceof FleetError)) throw err;
        throw new FleetError(err.code, `task ${index}: ${err.message}`, {
          details: { ...err.details, index },
        });
      }
    });
    const room = this.config.manager.queue.max_size - (await this.queue.depth());
    if (valid.length > room) {
      throw new FleetError(
        'queue_full',
        `the queue has room for ${Math.max(0, room)} more tasks, not ${valid.length}`,
      );
    }
    const out: { task: TaskRecord; created: boolean }[] = [];
    for (const submission of valid) out.push(await this.queue.submit(submission));
    return out;
  }

  private validateSubmission(input: unknown): TaskSubmission {
    // The one validation of a submission: the store takes the parsed value without parsing it again.
    const parsed = { data: parseSubmission(input) };
    // Before anything is stored: a record the read paths cannot serialize must never exist.
    checkJsonLimits(parsed.data.payload, this.payloadLimits, 'payload');
    const capability = parsed.data.capability;
    if (!this.knownCapabilities().has(capability)) {
      throw CapabilityCatalog.unknownCapability(capability, this.knownCapabilities());
    }
    this.catalog.validate(capability, parsed.data.payload);
    return parsed.data;
  }

  /** The typed error every refused submission, waiter and event stream gets during a graceful stop. */
  shutdownError(): FleetError {
    return new FleetError(
      'shutting_down',
      'the manager is shutting down; submit again, to another manager or after it restarts',
    );
  }

  get isShuttingDown(): boolean {
    return this.shutdownController.signal.aborted;
  }

  /** Aborted when a graceful stop begins. */
  get shutdownSignal(): AbortSignal {
    return this.shutdownController.signal;
  }

  /** Calls `release` once when a graceful stop begins (at once if it has); returns the unsubscribe. */
  onShutdown(release: () => void): () => void {
    if (this.isShuttingDown) {
      release();
      return () => undefined;
    }
    this.shutdownWaiters.add(release);
    return () => this.shutdownWaiters.delete(release);
  }

  private assertAccepting(): void {
    if (this.isShuttingDown) throw this.shutdownError();
  }

  /**
   * The graceful stop (SIGTERM): refuse new submissions (503 `shutting_down`, retryable), release every
   * waiter and event stream with that error, dispatch nothing more, give running tasks `graceMs` to
   * finish, then stop. On the Redis store whatever is left is handed back for other managers; on the memory
   * store it is lost, and the log line says how much. Bounded in time: grace plus the store's close.
   */
  shutdown(graceMs = this.config.manager.shutdown_grace): Promise<ShutdownReport> {
    this.shuttingDown ??= this.doShutdown(graceMs);
    return this.shuttingDown;
  }

  private async doShutdown(graceMs: number): Promise<ShutdownReport> {
    this.shutdownController.abort(this.shutdownError());
    for (const release of [...this.shutdownWaiters]) release();
    this.shutdownWaiters.clear();
    this.finalWaiters.failAll(() => this.shutdownError());
    this.dispatcher.pause();
    const started = this.clock.now();
    this.logger.info(
      { running: this.dispatcher.inFlight, graceMs },
      'shutting down: no new tasks; waiting for running ones',
    );
    while (this.dispatcher.inFlight > 0 && this.clock.now() - started < graceMs) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const running = this.dispatcher.inFlight;
    const queued = await this.queue.depth().catch(() => 0);
    const handedBack = this.config.manager.store === 'redis';
    if (handedBack) {
      this.logger.info(
        { queued, running },
        `shutdown: ${queued} queued and ${running} running tasks stay in Redis for the other managers`,
      );
    } else if (queued + running > 0) {
      this.logger.warn(
        { queued, running, lost: queued + running },
        `shutdown: ${queued + running} tasks are lost (${queued} queued, ${running} running): the memory store keeps nothing across a restart`,
      );
    } else {
      this.logger.info('shutdown: every task finished');
    }
    await this.stop();
    return { queued, running, handedBack };
  }

  async getTask(id: string): Promise<TaskRecord> {
    const task = await this.queue.get(id);
    if (!task) throw new FleetError('not_found', `no task ${id}`);
    return task;
  }

  listTasks(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    return this.queue.list(filter);
  }

  /** Resolves with the task once final; with a timeout, resolves with its current state when time is up. */
  async waitForTask(
    id: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<TaskRecord> {
    if (this.isShuttingDown) throw this.shutdownError();
    return new Promise<TaskRecord>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        this.finalWaiters.remove(id, waiter);
        timer?.cancel();
        options.signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const waiter: FinalWaiter = {
        final: (task) => finish(() => resolve(task)),
        fail: (err) => finish(() => reject(err)),
      };
      const onAbort = () => finish(() => reject(new FleetError('cancelled', 'wait aborted')));
      // Waiting before the read, so a task finishing in between is not missed and one read is enough.
      this.finalWaiters.add(id, waiter);
      this.getTask(id).then(
        (t) => {
          if (isFinal(t.state)) finish(() => resolve(t));
        },
        (err: Error) => finish(() => reject(err)),
      );
      if (options.timeoutMs !== undefined) {
        timer = this.clock.setTimeout(() => {
          finish(() => {
            this.getTask(id).then(resolve, reject);
          });
        }, options.timeoutMs);
      }
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Submits and waits for the final state (`POST /api/tasks?wait=true`, the spec's executeTask). The waiter
   * is in place before the task exists, so a new task needs no read to learn that it finished, however
   * fast that happens. `timeoutMs` defaults to what the task's own attempts could take; when it passes,
   * the task comes back in its current state.
   *
   * Not an async function: the promise it returns is the one the waiter settles, so a caller's `then` runs
   * in the microtask the final event is handled in (an `await` chain added two; submit-route.ts).
   */
  submitAndWait(
    input: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<{ task: TaskRecord; created: boolean }> {
    let submission: TaskSubmission;
    try {
      this.assertAccepting();
      submission = this.validateSubmission(input);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // The id is known before the task exists, so the waiter can be in place first. `validateSubmission`
    // returns its own copy unless it was handed one it had already parsed: that one is not changed.
    const id = submission.id ?? randomUUID();
    if (submission.id === undefined) {
      if (submission === input) submission = { ...submission, id };
      else submission.id = id;
    }
    return new Promise((resolve, reject) => {
      let timer: TimerHandle | undefined;
      /** Whether the store made a new task; undefined until it answered. */
      let created: boolean | undefined;
      /** The task reached its final state before the store answered (a session already lost). */
      let early: TaskRecord | undefined;
      let done = false;
      // Also takes the waiter out; after a settle or a stop it is already out, and that is a no-op.
      const end = () => {
        done = true;
        timer?.cancel();
        this.finalWaiters.remove(id, waiter);
      };
      const waiter: FinalWaiter = {
        final: (task) => {
          if (created === undefined) early = task;
          else {
            end();
            resolve({ task, created });
          }
        },
        fail: (err) => {
          end();
          reject(err);
        },
      };
      this.finalWaiters.add(id, waiter);
      this.queue.submit(submission).then(
        (submitted) => {
          if (done) return;
          created = submitted.created;
          if (early) {
            end();
            resolve({ task: early, created });
            return;
          }
          const limit = options.timeoutMs ?? defaultWaitMs(submitted.task);
          if (!created) {
            // An existing task (same id or idempotency key) may have finished long ago: read it first.
            end();
            this.waitForTask(submitted.task.id, { timeoutMs: limit }).then(
              (task) => resolve({ task, created: false }),
              reject,
            );
            return;
          }
          timer = this.clock.setTimeout(() => {
            end();
            this.getTask(id).then((task) => resolve({ task, created: true }), reject);
          }, limit);
        },
        (err: Error) => {
          if (done) return;
          end();
          reject(err);
        },
      );
    });
  }

  cancelTask(id: string, reason?: string): Promise<TaskRecord> {
    return this.dispatcher.cancel(id, reason);
  }

  retryTask(id: string): Promise<TaskRecord> {
    return this.queue.retry(id);
  }

  // --- workers ---

  async drainWorker(workerId: string): Promise<void> {
    if (!this.registry.get(workerId))
      throw new FleetError('not_found', `no worker ${workerId} on this manager`);
    await this.dispatcher.drain(workerId);
  }

  async resumeWorker(workerId: string): Promise<void> {
    if (!this.registry.get(workerId))
      throw new FleetError('not_found', `no worker ${workerId} on this manager`);
    await this.dispatcher.resume(workerId);
  }

  async restartWorker(workerId: string): Promise<boolean> {
    if (!this.registry.get(workerId))
      throw new FleetError('not_found', `no worker ${workerId} on this manager`);
    if (!this.deps.restartWorker) {
      throw new FleetError(
        'conflict',
        `worker ${workerId} is not supervised by Fleet; restart it where it runs`,
      );
    }
    return this.healthMonitor.restartWorker(workerId);
  }

  /** Forgets an endpoint (a supervised worker that was scaled down). */
  removeEndpoint(endpoint: string): Promise<void> {
    return this.discovery.removeEndpoint(endpoint);
  }

  /** Capabilities per worker type: the config's sections plus what connected workers announced. Do not modify. */
  capabilitiesByType(): Map<string, string[]> {
    return this.capabilities().byType;
  }

  knownCapabilities(): ReadonlySet<string> {
    return this.capabilities().known;
  }

  /** Derived from the config and the registry; rebuilt after a registry change, not on every submission. */
  private capabilities(): { byType: Map<string, string[]>; known: Set<string> } {
    if (this.capabilityIndex) return this.capabilityIndex;
    const byType = new Map<string, string[]>();
    for (const key of SECTION_KEYS) {
      const section = this.config[key];
      byType.set(section.name, [...section.capabilities]);
    }
    const offered = [
      ...this.registry.list(),
      // Workers other managers hold (distributed mode): their capabilities can be submitted here too.
      ...this.catalog.remoteOffers(),
    ];
    for (const w of offered) {
      const caps = byType.get(w.workerType) ?? [];
      for (const c of w.capabilities) if (!caps.includes(c)) caps.push(c);
      byType.set(w.workerType, caps);
    }
    const known = new Set<string>();
    for (const caps of byType.values()) for (const c of caps) known.add(c);
    this.capabilityIndex = { byType, known };
    return this.capabilityIndex;
  }

  /** Keeps the catalog's idea of which workers are live in step with the registry; announces changes. */
  private trackCatalog(e: RegistryEvent): void {
    const id = e.worker.workerId;
    if (e.kind === 'unregistered') this.catalog.forget(id);
    else if (e.kind === 'updated' && !this.catalog.setLive(id, e.worker.baseStatus !== 'offline')) return;
    this.announceCatalogChange();
  }

  /**
   * Merges the workers other managers hold (the shared directory's records, with their capability
   * descriptions) into the catalog, so a submission here is checked, and GET /api/capabilities and the MCP
   * tools list what the whole fleet offers, whichever manager a worker is connected to.
   */
  private async syncFleetCatalog(): Promise<void> {
    const records = await this.directory.list();
    const remote = records.filter((r) => r.ownerId !== this.id && !this.registry.get(r.workerId));
    const { refused, changed } = this.catalog.syncRemote(remote);
    for (const { capability, error } of refused) {
      this.logger.warn(
        { capability },
        `a capability published by another manager is refused here: ${error.message}`,
      );
    }
    if (!changed) return;
    this.capabilityIndex = undefined;
    this.announceCatalogChange();
  }

  private announceCatalogChange(): void {
    const change = this.catalog.takeChange();
    if (change) this.publish({ type: 'catalog', at: this.clock.now(), ...change } satisfies ManagerEvent);
  }

  private isIdempotent(capability: string): boolean {
    return this.sections.idempotent.has(capability);
  }

  private timeoutFor(capability: string): number {
    return this.sections.timeouts.get(capability) ?? this.config.python_sandbox.timeout;
  }

  /** One discovery round: dial unowned endpoints, renew leases, publish worker state. */
  discover(): Promise<void> {
    return this.discovery.discover();
  }

  /**
   * Takes the hello's self-descriptions into the catalog. A capability whose schema is refused is not routed
   * to this worker (its tasks would skip the check); the worker hears why, and the operator gets an alert.
   */
  private async admitToCatalog(endpoint: string, connection: WorkerConnection): Promise<string[]> {
    const hello = connection.hello;
    const refused = this.catalog.admit(hello.workerId, hello.workerType, hello.capabilities, hello.describes);
    for (const { capability, error } of refused) {
      this.logger.error({ workerId: hello.workerId, capability, endpoint }, error.message);
      await connection
        .send({ type: 'error', error: error.toJSON(), inReplyTo: 'hello' })
        .catch(() => undefined);
      this.publishEvent({
        type: 'alert',
        at: this.clock.now(),
        level: 'error',
        kind: 'capability_refused',
        key: `capability_refused:${hello.workerId}:${capability}`,
        message: error.message,
        workerId: hello.workerId,
        endpoint,
      });
    }
    const refusedNames = new Set(refused.map((r) => r.capability));
    return hello.capabilities.filter((c) => !refusedNames.has(c));
  }
}

function recordToView(r: WorkerRecord): WorkerStatusView {
  const m = r.metrics ?? {};
  return {
    workerId: r.workerId,
    workerType: r.workerType,
    endpoint: r.endpoint,
    port: r.port,
    status: r.status,
    capabilities: r.capabilities,
    currentLoad: r.currentLoad,
    lastHeartbeat: new Date(r.lastHeartbeat),
    maxConcurrency: r.maxConcurrency,
    inFlight: r.inFlight,
    draining: false,
    version: r.version ?? '',
    info: r.info ?? {},
    ...(r.ownerId ? { ownerId: r.ownerId } : {}),
    metrics: {
      workerId: r.workerId,
      workerType: r.workerType,
      taskCount: m.taskCount ?? 0,
      averageResponseTime: m.averageResponseTime ?? 0,
      successRate: m.successRate ?? 1,
      errorCount: m.errorCount ?? 0,
      cpuUsage: m.cpuUsage ?? 0,
      memoryUsage: m.memoryUsage ?? 0,
      diskUsage: m.diskUsage ?? 0,
      connectionCount: 1,
      uptime: m.uptime ?? 0,
      lastHealthCheck: null,
    },
  };
}
