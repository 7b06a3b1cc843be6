/**
 * The composition root: WorkerManager wires the registry, discovery, dispatcher, health monitor, queue and
 * metrics, and exposes the spec's operations (registerWorker, executeTask, getWorkerStatus,
 * redistributeTasks) plus what the API needs.
 *
 * Discovery (DESIGN §2): endpoints come from the config, from workers announcing themselves, from workers
 * Fleet spawned, and from DNS names. Every round the manager dials each endpoint nobody owns (the directory's
 * ownership lease makes this safe with several managers), renews the leases it holds and publishes the state
 * of its workers, so any manager can show the whole fleet.
 */
import { randomUUID } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { pino, type Logger } from 'pino';
import { WORKER_DEFAULTS, type FleetConfig, type WorkerSectionKey } from '../config/schema.js';
import { FleetError } from '../protocol/errors.js';
import { CLOSE_CODES } from '../protocol/transport.js';
import { checkJsonLimits, type JsonLimits } from '../protocol/json-limits.js';
import { MemoryArtifactStore, type ArtifactStore } from './artifacts/artifact-store.js';
import { createStrategy } from './balancing/index.js';
import { CapabilityCatalog, type CatalogChange } from './catalog/capability-catalog.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import {
  RealWebSocketWorkerInterface,
  type WebSocketWorkerInterface,
  type WorkerConnection,
} from './connect/worker-interface.js';
import { Dispatcher, type ProgressEvent } from './dispatch/dispatcher.js';
import { HealthMonitor } from './health/health-monitor.js';
import { ManagerMetrics } from './metrics/manager-metrics.js';
import { OperatorEventLog, type OperatorEvent } from './operator-events.js';
import { MemoryTaskQueue } from './queue/memory-task-queue.js';
import type { TaskEvent, TaskFilter, TaskQueue } from './queue/task-queue.js';
import { isFinal, TaskSubmissionSchema, type TaskRecord, type TaskSubmission } from './queue/task.js';
import { MemoryWorkerDirectory } from './registry/memory-worker-directory.js';
import type { WorkerDirectory, WorkerRecord } from './registry/worker-directory.js';
import {
  viewOf,
  WorkerRegistry,
  type RegistryEvent,
  type WorkerStatusView,
} from './registry/worker-registry.js';
import { logDestination } from '../workers/common/logger.js';

export type ConnectingInterface = WebSocketWorkerInterface & {
  connect(endpoint: string): Promise<WorkerConnection>;
};

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

export interface RegisterWorkerConfig {
  endpoint: string;
  workerType?: string;
  source?: 'config' | 'announce' | 'spawned' | 'dns' | 'api';
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

const SECTION_KEYS = Object.keys(WORKER_DEFAULTS) as WorkerSectionKey[];
/** How long an announced endpoint may stay unreachable before it is forgotten. */
const ANNOUNCE_TTL_MS = 60_000;

export function normalizeEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new FleetError('invalid_task', `"${endpoint}" is not a URL (expected ws://host:port/ws)`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new FleetError('invalid_task', `worker endpoint must be ws:// or wss://, got ${endpoint}`);
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/ws';
  return url.toString();
}

/** Long enough for every attempt the task may make, plus a margin for queueing. */
const defaultWaitMs = (task: TaskRecord): number => task.timeoutMs * task.maxAttempts + 5000;

export class WorkerManager {
  readonly id: string;
  readonly registry: WorkerRegistry;
  readonly dispatcher: Dispatcher;
  readonly healthMonitor: HealthMonitor;
  readonly metrics: ManagerMetrics;
  readonly queue: TaskQueue;
  readonly directory: WorkerDirectory;
  readonly artifacts: ArtifactStore;
  readonly logger: Logger;
  readonly clock: Clock;
  private readonly workerInterface: ConnectingInterface;
  private readonly events = new EventEmitter();
  private readonly endpointWorker = new Map<string, string>();
  /** Endpoints whose peer claimed the id of a worker already connected elsewhere: not re-dialed while it is. */
  private readonly aliases = new Map<string, string>();
  private readonly dialing = new Set<string>();
  private readonly backoff = new Map<string, { until: number; delay: number; failingSince: number }>();
  private readonly endpointSource = new Map<string, RegisterWorkerConfig['source']>();
  private dnsEndpoints: string[] = [];
  private readonly finalWaiters = new Map<string, Set<(task: TaskRecord) => void>>();
  private capabilityIndex: { byType: Map<string, string[]>; known: Set<string> } | undefined;
  private lastDns = 0;
  private discoveryTimer: TimerHandle | undefined;
  private discovering = false;
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
      strategy: createStrategy(m.strategy),
      artifacts: this.artifacts,
      clock: this.clock,
      logger: this.logger,
      metrics: this.metrics,
      outputLimits: { ...this.payloadLimits, maxBytes: m.max_frame_bytes },
      isIdempotent: (capability) => this.isIdempotent(capability),
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
    this.events.setMaxListeners(0);
    this.unsubscribers.push(
      this.queue.subscribe((event) => {
        if (isFinal(event.task.state)) {
          for (const waiter of [...(this.finalWaiters.get(event.task.id) ?? [])]) waiter(event.task);
        }
        this.events.emit('event', { type: 'task', event } satisfies ManagerEvent);
      }),
      this.registry.subscribe((e) => {
        // Capabilities change only when a worker (re)registers or leaves; any registry event may be one.
        this.capabilityIndex = undefined;
        this.trackCatalog(e);
        // Heartbeats and every finished task update the registry: build the view only for a listener.
        if (this.events.listenerCount('event') === 0) return;
        this.events.emit('event', {
          type: 'worker',
          kind: e.kind,
          worker: viewOf(e.worker, this.clock.now()),
        } satisfies ManagerEvent);
      }),
      this.dispatcher.onProgress((progress) =>
        this.events.emit('event', { type: 'progress', progress } satisfies ManagerEvent),
      ),
    );
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const endpoint of this.config.manager.workers) {
      await this.addEndpoint({ endpoint, source: 'config' });
    }
    await this.healthMonitor.startMonitoring();
    this.discoveryTimer = this.clock.setInterval(
      () => void this.discover(),
      this.config.manager.health.heartbeat_interval,
    );
    await this.discover();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.discoveryTimer?.cancel();
    this.healthMonitor.stopMonitoring();
    await this.dispatcher.stop();
    for (const [endpoint, workerId] of this.endpointWorker) {
      await this.directory.release(endpoint, this.id).catch(() => undefined);
      await this.dispatcher
        .connection(workerId)
        ?.close(1001, 'manager stopping')
        .catch(() => undefined);
    }
    for (const u of this.unsubscribers) u();
    await this.queue.close();
    await this.directory.close();
  }

  subscribe(listener: (event: ManagerEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  /** Publishes a scaling decision or an alert from outside the core (fleet up's autoscaler and supervisor). */
  publishEvent(event: OperatorEvent): void {
    this.operatorEvents.record(event);
    this.events.emit('event', event satisfies ManagerEvent);
  }

  // --- the spec's operations ---

  /** Adds a worker endpoint and dials it now. Resolves with the worker id once connected. */
  async registerWorker(
    config: RegisterWorkerConfig,
  ): Promise<{ endpoint: string; workerId?: string; error?: string; code?: string }> {
    const endpoint = await this.addEndpoint(config);
    const existing = this.endpointWorker.get(endpoint);
    if (existing && this.dispatcher.isConnected(existing)) return { endpoint, workerId: existing };
    const alias = this.aliases.get(endpoint);
    if (alias && this.dispatcher.isConnected(alias)) {
      return {
        endpoint,
        workerId: alias,
        code: 'duplicate_worker',
        error: `the peer at ${endpoint} is worker "${alias}", already connected through another endpoint`,
      };
    }
    try {
      const workerId = await this.dial(endpoint);
      return { endpoint, ...(workerId ? { workerId } : {}) };
    } catch (err) {
      const code = err instanceof FleetError ? err.code : undefined;
      return { endpoint, error: (err as Error).message, ...(code ? { code } : {}) };
    }
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
    const parsed = TaskSubmissionSchema.safeParse(input);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new FleetError(
        'invalid_task',
        `invalid task: ${i?.path.join('.') || '(root)'}: ${i?.message ?? 'invalid'}`,
      );
    }
    // Before anything is stored: a record the read paths cannot serialize must never exist.
    checkJsonLimits(parsed.data.payload, this.payloadLimits, 'payload');
    const capability = parsed.data.capability;
    if (!this.knownCapabilities().has(capability)) {
      throw CapabilityCatalog.unknownCapability(capability, this.knownCapabilities());
    }
    this.catalog.validate(capability, parsed.data.payload);
    return this.queue.submit(parsed.data);
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
    return new Promise<TaskRecord>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        unsubscribe();
        timer?.cancel();
        options.signal?.removeEventListener('abort', onAbort);
        stopWatchingShutdown();
        fn();
      };
      const onAbort = () => finish(() => reject(new FleetError('cancelled', 'wait aborted')));
      let stopWatchingShutdown: () => void = () => undefined;
      // Subscribed before the read, so a task finishing in between is not missed and one read is enough.
      const unsubscribe = this.onFinal(id, (task) => finish(() => resolve(task)));
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
      stopWatchingShutdown = this.onShutdown(() => finish(() => reject(this.shutdownError())));
    });
  }

  /**
   * Submits and waits for the final state (`POST /api/tasks?wait=true`, the spec's executeTask). The waiter
   * is in place before the task exists, so a new task needs no read to learn that it finished, however
   * fast that happens. `timeoutMs` defaults to what the task's own attempts could take; when it passes,
   * the task comes back in its current state.
   */
  async submitAndWait(
    input: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<{ task: TaskRecord; created: boolean }> {
    const given = typeof input === 'object' && input !== null && !Array.isArray(input);
    const submission = given && !('id' in input) ? { ...input, id: randomUUID() } : input;
    const id = given ? (submission as { id?: unknown }).id : undefined;
    let final: ((task: TaskRecord) => void) | undefined;
    const finished = new Promise<TaskRecord>((resolve) => (final = resolve));
    const unsubscribe = typeof id === 'string' ? this.onFinal(id, (t) => final?.(t)) : () => undefined;
    let timer: TimerHandle | undefined;
    let stopWatchingShutdown: (() => void) | undefined;
    try {
      const { task, created } = await this.submit(submission);
      const limit = options.timeoutMs ?? defaultWaitMs(task);
      if (!created || task.id !== id) {
        // An existing task (same id or idempotency key) may have finished long ago: read it first.
        unsubscribe();
        return { task: await this.waitForTask(task.id, { timeoutMs: limit }), created };
      }
      const timedOut = new Promise<undefined>((resolve) => {
        timer = this.clock.setTimeout(() => resolve(undefined), limit);
      });
      const released = new Promise<never>((_resolve, reject) => {
        stopWatchingShutdown = this.onShutdown(() => reject(this.shutdownError()));
      });
      const done = await Promise.race([finished, timedOut, released]);
      return { task: done ?? (await this.getTask(task.id)), created };
    } finally {
      timer?.cancel();
      unsubscribe();
      stopWatchingShutdown?.();
    }
  }

  /**
   * Calls `listener` when the task reaches a final state. Waiters are indexed by task id behind one queue
   * subscription, so thousands of waiting callers cost nothing per event.
   */
  private onFinal(id: string, listener: (task: TaskRecord) => void): () => void {
    let set = this.finalWaiters.get(id);
    if (!set) this.finalWaiters.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.finalWaiters.get(id) === set) this.finalWaiters.delete(id);
    };
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
  async removeEndpoint(endpoint: string): Promise<void> {
    const normalized = normalizeEndpoint(endpoint);
    await this.directory.removeEndpoint(normalized);
    this.endpointSource.delete(normalized);
    this.backoff.delete(normalized);
    const workerId = this.endpointWorker.get(normalized);
    this.endpointWorker.delete(normalized);
    if (workerId) {
      await this.dispatcher.workerLost(workerId, 'endpoint removed');
      await this.registry.unregisterWorker(workerId);
      await this.directory.remove(workerId);
    }
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
    for (const w of this.registry.list()) {
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

  private announceCatalogChange(): void {
    const change = this.catalog.takeChange();
    if (change)
      this.events.emit('event', { type: 'catalog', at: this.clock.now(), ...change } satisfies ManagerEvent);
  }

  private isIdempotent(capability: string): boolean {
    for (const key of SECTION_KEYS) {
      if (this.config[key].idempotent.includes(capability)) return true;
    }
    return false;
  }

  private timeoutFor(capability: string): number {
    for (const key of SECTION_KEYS) {
      const section = this.config[key];
      if (section.capabilities.includes(capability)) return section.timeout;
    }
    return this.config.python_sandbox.timeout;
  }

  private async addEndpoint(config: RegisterWorkerConfig): Promise<string> {
    const endpoint = normalizeEndpoint(config.endpoint);
    const source = config.source ?? 'api';
    await this.directory.addEndpoint(endpoint, {
      ...(config.workerType ? { workerType: config.workerType } : {}),
      source,
    });
    // Config and spawned endpoints are permanent; an announcement only refreshes a transient one.
    const previous = this.endpointSource.get(endpoint);
    if (!previous || previous === 'announce' || previous === 'dns') this.endpointSource.set(endpoint, source);
    const b = this.backoff.get(endpoint);
    if (b && source === 'announce') b.until = 0; // a live announcement means: try now
    return endpoint;
  }

  /** One discovery round: dial unowned endpoints, renew leases, publish worker state. */
  async discover(): Promise<void> {
    if (this.discovering || !this.started) return;
    this.discovering = true;
    try {
      const now = this.clock.now();
      const leaseTtl = this.leaseTtl();
      await this.resolveDns(now);
      const endpoints = new Set([...(await this.directory.endpoints()), ...this.dnsEndpoints]);
      for (const endpoint of endpoints) {
        const workerId = this.endpointWorker.get(endpoint);
        if (workerId && this.dispatcher.isConnected(workerId)) {
          // A lease belongs to the connection made through its endpoint; a mapping left from another
          // connection must not renew (or, failing, cut) the connection the worker has now.
          if (this.dispatcher.connection(workerId)?.endpoint !== endpoint) {
            this.endpointWorker.delete(endpoint);
            continue;
          }
          if (!(await this.directory.renew(endpoint, this.id, leaseTtl))) {
            this.logger.warn({ endpoint, workerId }, 'lost the ownership lease of a worker; letting it go');
            await this.dispatcher.workerLost(workerId, 'ownership lease lost');
          }
          continue;
        }
        const alias = this.aliases.get(endpoint);
        if (alias && this.dispatcher.isConnected(alias)) continue;
        if (this.dialing.has(endpoint)) continue;
        const b = this.backoff.get(endpoint);
        if (b && b.until > now) continue;
        if (b && this.endpointSource.get(endpoint) === 'announce' && now - b.failingSince > ANNOUNCE_TTL_MS) {
          this.logger.info({ endpoint }, 'forgetting an announced worker that stayed unreachable');
          await this.removeEndpoint(endpoint);
          continue;
        }
        void this.dial(endpoint).catch(() => undefined);
      }
      await this.publish(leaseTtl);
    } catch (err) {
      this.logger.error({ err }, 'discovery round failed');
    } finally {
      this.discovering = false;
    }
  }

  private leaseTtl(): number {
    const h = this.config.manager.health;
    return Math.max(3000, h.heartbeat_interval * h.missed_heartbeats * 3);
  }

  private async publish(ttl: number): Promise<void> {
    const now = this.clock.now();
    for (const w of this.registry.list()) {
      if (!this.dispatcher.isConnected(w.workerId)) continue;
      const v = viewOf(w, now);
      await this.directory.publish(
        {
          workerId: v.workerId,
          workerType: v.workerType,
          endpoint: v.endpoint,
          port: v.port,
          status: v.status,
          capabilities: v.capabilities,
          currentLoad: v.currentLoad,
          inFlight: v.inFlight,
          maxConcurrency: v.maxConcurrency,
          lastHeartbeat: w.lastHeartbeat,
          ownerId: this.id,
          version: v.version,
          info: v.info,
          metrics: {
            taskCount: v.metrics.taskCount,
            averageResponseTime: v.metrics.averageResponseTime,
            successRate: v.metrics.successRate,
            errorCount: v.metrics.errorCount,
            cpuUsage: v.metrics.cpuUsage,
            memoryUsage: v.metrics.memoryUsage,
            diskUsage: v.metrics.diskUsage,
            uptime: v.metrics.uptime,
          },
        },
        ttl,
      );
    }
  }

  private async resolveDns(now: number): Promise<void> {
    if (this.config.manager.dns.length === 0 || now - this.lastDns < 10_000) return;
    this.lastDns = now;
    const found: string[] = [];
    for (const entry of this.config.manager.dns) {
      const [name, port] = entry.split(':');
      if (!name || !port) continue;
      try {
        for (const a of await lookup(name, { all: true })) {
          const host = a.family === 6 ? `[${a.address}]` : a.address;
          found.push(normalizeEndpoint(`ws://${host}:${port}/ws`));
        }
      } catch (err) {
        this.logger.debug({ err, name }, 'DNS discovery lookup failed');
      }
    }
    this.dnsEndpoints = found;
  }

  /**
   * One identity, one live connection: a second connection claiming a connected worker's id (an alias of its
   * endpoint, or a peer impersonating it) is refused before it is registered, so it never takes a task and
   * never replaces or unsettles the connection the worker has.
   */
  private async refuseDuplicate(
    endpoint: string,
    connection: WorkerConnection,
    connectedEndpoint: string,
  ): Promise<never> {
    const workerId = connection.hello.workerId;
    const error = new FleetError(
      'duplicate_worker',
      `the peer at ${endpoint} says it is worker "${workerId}", which is already connected through ${connectedEndpoint}; refused (an alias of the same endpoint, or an impostor)`,
      { details: { workerId, endpoint, connectedEndpoint } },
    );
    await connection
      .send({ type: 'error', error: error.toJSON(), inReplyTo: 'hello' })
      .catch(() => undefined);
    await connection.close(CLOSE_CODES.duplicate, 'duplicate worker id').catch(() => undefined);
    this.aliases.set(endpoint, workerId);
    if (this.endpointWorker.get(endpoint) === workerId) this.endpointWorker.delete(endpoint);
    this.publishEvent({
      type: 'alert',
      at: this.clock.now(),
      level: 'error',
      kind: 'duplicate_worker',
      key: `duplicate_worker:${endpoint}`,
      message: error.message,
      workerId,
      endpoint,
    });
    throw error;
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

  private async dial(endpoint: string): Promise<string | undefined> {
    if (this.dialing.has(endpoint)) return undefined;
    this.dialing.add(endpoint);
    try {
      // Another manager holds this worker; it stays theirs until their lease lapses.
      if (!(await this.directory.acquire(endpoint, this.id, this.leaseTtl()))) return undefined;
      const connection = await this.workerInterface.connect(endpoint);
      const hello = connection.hello;
      const current = this.dispatcher.connection(hello.workerId);
      if (current && current !== connection && current.isOpen) {
        await this.refuseDuplicate(endpoint, connection, current.endpoint);
      }
      this.aliases.delete(endpoint);
      const port = Number(new URL(endpoint).port) || 80;
      const capabilities = await this.admitToCatalog(endpoint, connection);
      const worker = await this.registry.registerWorker({
        workerId: hello.workerId,
        workerType: hello.workerType,
        endpoint,
        port,
        capabilities,
        maxConcurrency: hello.maxConcurrency,
        version: hello.version,
        info: hello.info && this.dispatcher.withinOutputLimits(hello.workerId, hello.info) ? hello.info : {},
        ownerId: this.id,
      });
      const previousId = this.endpointWorker.get(endpoint);
      if (previousId && previousId !== hello.workerId && !this.dispatcher.isConnected(previousId)) {
        // A restarted process announces a new id on the same endpoint; the old record describes a dead process.
        await this.registry.unregisterWorker(previousId);
        await this.directory.remove(previousId).catch(() => undefined);
      }
      this.endpointWorker.set(endpoint, hello.workerId);
      // A worker back under the same id may register as an update: the catalog took its hello either way.
      this.announceCatalogChange();
      this.backoff.delete(endpoint);
      this.dispatcher.attach(worker, connection);
      this.logger.info(
        { workerId: hello.workerId, workerType: hello.workerType, endpoint },
        'worker connected',
      );
      return hello.workerId;
    } catch (err) {
      const now = this.clock.now();
      const prev = this.backoff.get(endpoint);
      const delay = Math.min(10_000, prev ? prev.delay * 2 : 250);
      this.backoff.set(endpoint, { until: now + delay, delay, failingSince: prev?.failingSince ?? now });
      await this.directory.release(endpoint, this.id).catch(() => undefined);
      const e = err as FleetError;
      const level =
        e.code === 'unauthorized' || e.code === 'protocol_mismatch' || e.code === 'duplicate_worker'
          ? 'error'
          : 'debug';
      this.logger[level](
        { endpoint, code: e.code, retryInMs: delay },
        `cannot connect to worker: ${e.message}`,
      );
      throw err;
    } finally {
      this.dialing.delete(endpoint);
    }
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
