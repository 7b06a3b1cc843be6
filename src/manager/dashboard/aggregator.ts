/**
 * The dashboard's server side: it listens to every manager event and folds them into per-second buckets,
 * so a browser receives ONE compact snapshot per second however many tasks pass through (1 000/s or more).
 * Nothing here holds more than a bounded window: a ring of series points, a capped sample reservoir per
 * type per second, an LRU of recent task rows and of progress logs.
 *
 * Alerts are computed here rather than in the browser so every open dashboard (and a future `fleet status`)
 * agrees on them, and so they are judged on the full event stream, not on a sampled view:
 *   - `no_online_worker`: a type that had workers, or has tasks waiting, has none online;
 *   - `flapping`: an endpoint went offline ≥ 3 times within 60 s (keyed by endpoint because a restarted
 *     process announces a new worker id on the same endpoint);
 *   - `queue_growing_idle`: a type's queue grew for several seconds while its online workers had free slots
 *     — the backlog that looks like overload but is a stuck dispatcher or a capability mismatch.
 * Alerts published by others (`worker_parked` from `fleet up`'s supervisor) are shown until resolved.
 */
import {
  isFinal,
  loadByType,
  Lru,
  type AlertEvent,
  type Clock,
  type ManagerEvent,
  type PublishedAlertKind,
  type ScalingDecision,
  type SubscribeOptions,
  type TaskRecord,
  type TaskState,
  type TimerHandle,
  type WorkerStatusView,
} from '../public.js';

/** What the aggregator needs from the manager; `WorkerManager` satisfies it. */
export interface DashboardSource {
  readonly id: string;
  subscribe(listener: (event: ManagerEvent) => void, options?: SubscribeOptions): () => void;
  getWorkerStatus(): Promise<WorkerStatusView[]>;
  capabilitiesByType(): Map<string, string[]>;
  queueDepth(capability?: string): Promise<number>;
}

export interface AggregatorOptions {
  clock: Clock;
  /** @default 1000 */
  tickMs?: number;
  /** Series points kept (and sent to a browser that connects). @default 300 */
  historyPoints?: number;
  /** Duration samples kept per type per tick; beyond it, reservoir sampling. @default 1000 */
  samplesPerTick?: number;
  /** Recent task rows kept for the task list. @default 1000 */
  recentTasks?: number;
  /** Tasks whose progress log is kept, and entries per task. @default 200, 100 */
  progressTasks?: number;
  progressEntries?: number;
  /** @default Math.random (reservoir sampling) */
  random?: () => number;
  onError?: (err: unknown) => void;
}

export const FLAP_WINDOW_MS = 60_000;
export const FLAP_THRESHOLD = 3;
/** Seconds of consecutive growth with free slots before `queue_growing_idle` fires. */
export const GROWTH_WINDOW_TICKS = 5;

export type WorkerRowStatus = WorkerStatusView['status'];

export interface WorkerRow {
  id: string;
  type: string;
  status: WorkerRowStatus;
  draining: boolean;
  load: number;
  inFlight: number;
  max: number;
  heartbeatAgeMs: number;
  uptimeS: number;
  memory: number;
  cpu: number;
  endpoint: string;
  version: string;
  /** Isolation level (python) or pool state (browser), when the worker reports it. */
  detail?: string;
  /** True when the detail is a warning (insecure isolation, empty pool). */
  detailWarn?: boolean;
}

export interface TypeRow {
  type: string;
  workers: number;
  online: number;
  busy: number;
  offline: number;
  error: number;
  inFlight: number;
  capacity: number;
  /** Free slots on online workers that are not draining. */
  free: number;
  queued: number;
}

export interface TypePoint {
  completed: number;
  failed: number;
  p50: number | null;
  p95: number | null;
}

export interface SeriesPoint {
  t: number;
  queue: number;
  queueByType: Record<string, number>;
  types: Record<string, TypePoint>;
  /** Resident memory per worker id (bytes), from its last heartbeat. */
  memory: Record<string, number>;
}

export type AlertKind = 'no_online_worker' | 'flapping' | 'queue_growing_idle' | PublishedAlertKind;
/** Scaling changes and refusals shown on the board (holds are not). */
export const SCALING_ROWS = 10;

export interface Alert {
  kind: AlertKind;
  severity: 'error' | 'warning';
  key: string;
  message: string;
  since: number;
}

export interface TaskRow {
  id: string;
  capability: string;
  type: string;
  state: TaskState;
  workerId?: string;
  attempt: number;
  maxAttempts: number;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  durationMs?: number;
  error?: string;
  updatedAt: number;
}

export interface TaskListFilter {
  state?: TaskState | 'active';
  type?: string;
  limit?: number;
}

export interface Snapshot {
  t: number;
  managerId: string;
  workers: WorkerRow[];
  types: TypeRow[];
  point: SeriesPoint;
  alerts: Alert[];
  /** The latest scaling changes and refusals, newest first. */
  scaling: ScalingDecision[];
  totals: { completed: number; failed: number; cancelled: number };
}

export interface ProgressEntry {
  t: number;
  attempt: number;
  percent?: number;
  message?: string;
  log?: string;
}

interface Bucket {
  completed: number;
  failed: number;
  seen: number;
  samples: number[];
}

const FAILED_STATES: readonly TaskState[] = ['failed', 'timed_out'];
const MAX_TEXT = 500;

function clip(s: string, n = MAX_TEXT): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? null;
}

/** A short human description of what the worker reports about itself (python isolation, browser pool). */
export function describeInfo(info: Record<string, unknown>): { detail: string; warn: boolean } | undefined {
  const isolation = info.isolation as { level?: unknown; secure?: unknown } | undefined;
  if (isolation && typeof isolation === 'object' && typeof isolation.level === 'string') {
    const insecure = isolation.secure === false;
    return { detail: `isolation: ${isolation.level}${insecure ? ' (INSECURE)' : ''}`, warn: insecure };
  }
  const browser = info.browser as { pool?: unknown } | undefined;
  if (browser && typeof browser === 'object') {
    const pool = browser.pool as { ready?: unknown; size?: unknown; launching?: unknown } | null | undefined;
    if (!pool || typeof pool !== 'object') return { detail: 'pool: not started', warn: true };
    const ready = typeof pool.ready === 'number' ? pool.ready : 0;
    const size = typeof pool.size === 'number' ? pool.size : 0;
    const launching =
      typeof pool.launching === 'number' && pool.launching > 0 ? `, ${pool.launching} launching` : '';
    return { detail: `pool: ${ready}/${size} ready${launching}`, warn: ready === 0 };
  }
  return undefined;
}

export class DashboardAggregator {
  private readonly tickMs: number;
  private readonly historyPoints: number;
  private readonly samplesPerTick: number;
  private readonly recentLimit: number;
  private readonly progressTasks: number;
  private readonly progressEntries: number;
  private readonly random: () => number;

  private buckets = new Map<string, Bucket>();
  private readonly history: SeriesPoint[] = [];
  /**
   * Recent tasks, most recently updated last (an Lru: moving an entry leaves no hole in a Map's table for
   * eviction to walk over). What a row is made of is kept (one entry per task, updated in place); the rows
   * themselves are built when read (`tasks()`), so a manager with no dashboard open does not build a row
   * for every task transition.
   */
  private readonly recent = new Lru<RowSource>();
  /** Assigned/running tasks, kept apart so a burst of short tasks cannot push a long one out of view. */
  private readonly active = new Map<string, RowSource>();
  private readonly progress = new Map<string, ProgressEntry[]>();
  private readonly workerType = new Map<string, string>();
  private readonly lastStatus = new Map<string, WorkerRowStatus>();
  private readonly offlineTransitions = new Map<string, { workerId: string; at: number[] }>();
  private readonly seenTypes = new Set<string>();
  private readonly alertSince = new Map<string, number>();
  private readonly growth = new Map<string, { depth: number; idle: boolean }[]>();
  private readonly published = new Map<string, AlertEvent>();
  private readonly scaling: ScalingDecision[] = [];
  private capabilityType = new Map<string, string>();
  private totals = { completed: 0, failed: 0, cancelled: 0 };
  private latest: Snapshot | undefined;
  private readonly listeners = new Set<(snapshot: Snapshot) => void>();
  private unsubscribe: (() => void) | undefined;
  private timer: TimerHandle | undefined;
  private inflight: Promise<Snapshot | undefined> | undefined;
  /** Events taken but not folded in yet (see onEvent). */
  private pending: ManagerEvent[] = [];

  constructor(
    private readonly source: DashboardSource,
    private readonly options: AggregatorOptions,
  ) {
    this.tickMs = options.tickMs ?? 1000;
    this.historyPoints = options.historyPoints ?? 300;
    this.samplesPerTick = options.samplesPerTick ?? 1000;
    this.recentLimit = options.recentTasks ?? 1000;
    this.progressTasks = options.progressTasks ?? 200;
    this.progressEntries = options.progressEntries ?? 100;
    this.random = options.random ?? Math.random;
  }

  start(): void {
    if (this.unsubscribe) return;
    this.refreshCapabilities();
    // A worker's status changes are what the board and its alerts follow; its other updates (every
    // heartbeat, dispatch and result) are read from the registry once per tick.
    this.unsubscribe = this.source.subscribe((event) => this.onEvent(event), {
      types: ['task', 'worker', 'progress', 'alert', 'scaling'],
      workerUpdates: 'changes',
    });
    this.timer = this.options.clock.setInterval(() => void this.tick(), this.tickMs);
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.timer?.cancel();
    this.timer = undefined;
    this.listeners.clear();
  }

  /** Called with each new snapshot (once per tick). Returns the unsubscribe function. */
  onSnapshot(listener: (snapshot: Snapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last snapshot, or a fresh one when none was taken yet (a browser that connects before the first tick). */
  async current(): Promise<Snapshot> {
    return this.latest ?? this.snapshot(false);
  }

  series(): SeriesPoint[] {
    return [...this.history];
  }

  tasks(filter: TaskListFilter = {}): TaskRow[] {
    this.flush();
    const limit = Math.min(filter.limit ?? 100, 500);
    const matches = (row: RowSource) =>
      (!filter.type || row.type === filter.type) &&
      (!filter.state ||
        (filter.state === 'active'
          ? row.state === 'assigned' || row.state === 'running'
          : row.state === filter.state));
    const out: TaskRow[] = [];
    const taken = new Set<string>();
    // Running work first (longest running on top), then everything else, newest first.
    const running = [...this.active.values()].sort(
      (a, b) => (a.startedAt ?? a.createdAt) - (b.startedAt ?? b.createdAt),
    );
    for (const row of running) {
      if (out.length >= limit) return out;
      if (matches(row)) {
        out.push(toRow(row));
        taken.add(row.id);
      }
    }
    const recent = [...this.recent.values()];
    for (let i = recent.length - 1; i >= 0 && out.length < limit; i--) {
      const row = recent[i]!;
      if (!taken.has(row.id) && matches(row)) out.push(toRow(row));
    }
    return out;
  }

  progressLog(taskId: string): ProgressEntry[] {
    this.flush();
    return [...(this.progress.get(taskId) ?? [])];
  }

  /**
   * Takes one event; it is folded in at the end of the current microtask run, or before any read. Events
   * come in the middle of a task's turn (a result, a dispatch), and the turn's answer frame is written in a
   * microtask queued before this one: the board's bookkeeping no longer holds it up (docs/performance.md,
   * "Fourth pass").
   */
  onEvent(event: ManagerEvent): void {
    this.pending.push(event);
    if (this.pending.length === 1) queueMicrotask(() => this.flush());
  }

  /** Folds in every event taken so far, in order. */
  private flush(): void {
    if (this.pending.length === 0) return;
    const events = this.pending;
    this.pending = [];
    for (const event of events) this.fold(event);
  }

  /** Folds one event in. O(1) per event: this runs for every task transition at full throughput. */
  private fold(event: ManagerEvent): void {
    try {
      if (event.type === 'task') this.onTask(event.event.kind, event.event.task);
      else if (event.type === 'worker') this.onWorker(event.kind, event.worker);
      else if (event.type === 'progress') this.onProgress(event.progress);
      else if (event.type === 'alert') {
        if (event.resolved) this.published.delete(event.key);
        else this.published.set(event.key, event);
      } else if (event.type === 'scaling' && event.decision.action !== 'hold') {
        this.scaling.unshift(event.decision);
        if (this.scaling.length > SCALING_ROWS) this.scaling.pop();
      }
    } catch (err) {
      this.options.onError?.(err);
    }
  }

  /**
   * Closes the current bucket into a series point, recomputes the board and alerts, notifies listeners.
   * A tick that is still reading the store when the next one is due is shared, never run twice at once.
   */
  tick(): Promise<Snapshot | undefined> {
    this.inflight ??= this.runTick().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async runTick(): Promise<Snapshot | undefined> {
    try {
      const snap = await this.snapshot(true);
      this.latest = snap;
      for (const l of this.listeners) {
        try {
          l(snap);
        } catch (err) {
          this.options.onError?.(err);
        }
      }
      return snap;
    } catch (err) {
      this.options.onError?.(err);
      return undefined;
    }
  }

  private onTask(kind: string, task: TaskRecord): void {
    const type = this.typeOf(task);
    // get() makes the task the most recent.
    let row = this.recent.get(task.id);
    if (row) row.update(task, type);
    else {
      row = new RowSource(task, type);
      this.recent.set(task.id, row);
      if (this.recent.size > this.recentLimit) this.recent.shift();
    }
    if (task.state === 'assigned' || task.state === 'running') this.active.set(task.id, row);
    else this.active.delete(task.id);
    if (kind !== 'finished' || !isFinal(task.state)) return;
    const bucket = this.bucket(type);
    if (task.state === 'succeeded') {
      bucket.completed += 1;
      this.totals.completed += 1;
    } else if (FAILED_STATES.includes(task.state)) {
      bucket.failed += 1;
      this.totals.failed += 1;
    } else {
      this.totals.cancelled += 1;
    }
    const durationMs = row.durationMs();
    if (durationMs !== undefined && task.state !== 'cancelled') this.sample(bucket, durationMs);
  }

  private onWorker(kind: 'registered' | 'updated' | 'unregistered', worker: WorkerStatusView): void {
    if (kind === 'unregistered') {
      this.lastStatus.delete(worker.workerId);
      return;
    }
    this.workerType.set(worker.workerId, worker.workerType);
    this.seenTypes.add(worker.workerType);
    this.observeStatus(worker.workerId, worker.endpoint, worker.status);
  }

  private onProgress(p: Extract<ManagerEvent, { type: 'progress' }>['progress']): void {
    let log = this.progress.get(p.taskId);
    if (log) this.progress.delete(p.taskId);
    else log = [];
    this.progress.set(p.taskId, log);
    if (this.progress.size > this.progressTasks) {
      const oldest = this.progress.keys().next();
      if (!oldest.done) this.progress.delete(oldest.value);
    }
    log.push({
      t: this.options.clock.now(),
      attempt: p.attempt,
      ...(p.percent !== undefined ? { percent: p.percent } : {}),
      ...(p.message !== undefined ? { message: clip(p.message) } : {}),
      ...(p.log ? { log: clip(`[${p.log.stream}] ${p.log.data}`) } : {}),
    });
    if (log.length > this.progressEntries) log.shift();
  }

  private observeStatus(workerId: string, endpoint: string, status: WorkerRowStatus): void {
    const previous = this.lastStatus.get(workerId);
    this.lastStatus.set(workerId, status);
    if (status !== 'offline' || previous === undefined || previous === 'offline') return;
    const now = this.options.clock.now();
    const entry = this.offlineTransitions.get(endpoint) ?? { workerId, at: [] };
    entry.workerId = workerId;
    entry.at = entry.at.filter((t) => now - t < FLAP_WINDOW_MS);
    entry.at.push(now);
    this.offlineTransitions.set(endpoint, entry);
  }

  private typeOf(task: TaskRecord): string {
    return (
      (task.workerId ? this.workerType.get(task.workerId) : undefined) ??
      this.capabilityType.get(task.capability) ??
      task.capability
    );
  }

  private bucket(type: string): Bucket {
    let b = this.buckets.get(type);
    if (!b) {
      b = { completed: 0, failed: 0, seen: 0, samples: [] };
      this.buckets.set(type, b);
    }
    return b;
  }

  /** Reservoir sampling (Algorithm R): a uniform sample of the tick's durations in bounded memory. */
  private sample(b: Bucket, ms: number): void {
    b.seen += 1;
    if (b.samples.length < this.samplesPerTick) b.samples.push(ms);
    else {
      const j = Math.floor(this.random() * b.seen);
      if (j < this.samplesPerTick) b.samples[j] = ms;
    }
  }

  private refreshCapabilities(): void {
    const map = new Map<string, string>();
    for (const [type, caps] of this.source.capabilitiesByType())
      for (const c of caps) if (!map.has(c)) map.set(c, type);
    this.capabilityType = map;
  }

  private async snapshot(closeBucket: boolean): Promise<Snapshot> {
    this.flush();
    const now = this.options.clock.now();
    this.refreshCapabilities();
    const views = await this.source.getWorkerStatus();
    for (const v of views) {
      this.workerType.set(v.workerId, v.workerType);
      this.seenTypes.add(v.workerType);
      // Remote workers (other managers') produce no events here; their transitions are seen per tick.
      this.observeStatus(v.workerId, v.endpoint, v.status);
    }
    const capsByType = this.source.capabilitiesByType();
    const queueByType: Record<string, number> = {};
    for (const [type, caps] of capsByType) {
      let n = 0;
      for (const c of caps) n += await this.source.queueDepth(c);
      queueByType[type] = n;
    }
    const queue = await this.source.queueDepth();

    const workers = views.map((v) => toWorkerRow(v, now));
    const types = summarizeTypes(workers, queueByType);

    const typesPoint: Record<string, TypePoint> = {};
    const buckets = this.buckets;
    if (closeBucket) this.buckets = new Map();
    for (const [type, b] of buckets) {
      const sorted = [...b.samples].sort((x, y) => x - y);
      typesPoint[type] = {
        completed: b.completed,
        failed: b.failed,
        p50: percentile(sorted, 50),
        p95: percentile(sorted, 95),
      };
    }
    const memory: Record<string, number> = {};
    for (const w of workers) if (w.status !== 'offline') memory[w.id] = w.memory;
    const point: SeriesPoint = { t: now, queue, queueByType, types: typesPoint, memory };
    if (closeBucket) {
      this.history.push(point);
      if (this.history.length > this.historyPoints) this.history.shift();
      this.trackGrowth(types);
    }
    return {
      t: now,
      managerId: this.source.id,
      workers,
      types,
      point,
      alerts: this.alerts(types, now),
      scaling: [...this.scaling],
      totals: { ...this.totals },
    };
  }

  private trackGrowth(types: TypeRow[]): void {
    for (const t of types) {
      const h = this.growth.get(t.type) ?? [];
      // Idle = free slots on online workers that are not draining; a full or dead fleet is not idle.
      h.push({ depth: t.queued, idle: t.free > 0 });
      if (h.length > GROWTH_WINDOW_TICKS + 1) h.shift();
      this.growth.set(t.type, h);
    }
  }

  private alerts(types: TypeRow[], now: number): Alert[] {
    const out: Omit<Alert, 'since'>[] = [];
    for (const t of types) {
      if (t.online + t.busy === 0 && (this.seenTypes.has(t.type) || t.queued > 0)) {
        out.push({
          kind: 'no_online_worker',
          severity: 'error',
          key: `no_online_worker:${t.type}`,
          message:
            `no online ${t.type} worker` +
            (t.workers > 0 ? ` (${t.offline + t.error} of ${t.workers} offline or in error)` : '') +
            (t.queued > 0 ? `; ${t.queued} task${t.queued === 1 ? '' : 's'} waiting` : ''),
        });
      }
      const h = this.growth.get(t.type) ?? [];
      if (
        h.length > GROWTH_WINDOW_TICKS &&
        h.every((s) => s.idle) &&
        h.every((s, i) => i === 0 || s.depth >= h[i - 1]!.depth) &&
        h[h.length - 1]!.depth > h[0]!.depth
      ) {
        out.push({
          kind: 'queue_growing_idle',
          severity: 'warning',
          key: `queue_growing_idle:${t.type}`,
          message: `${t.type} queue grew to ${t.queued} over ${GROWTH_WINDOW_TICKS} s while its workers had ${t.free} free slot${t.free === 1 ? '' : 's'}`,
        });
      }
    }
    for (const [endpoint, entry] of this.offlineTransitions) {
      entry.at = entry.at.filter((t) => now - t < FLAP_WINDOW_MS);
      if (entry.at.length === 0) {
        this.offlineTransitions.delete(endpoint);
        continue;
      }
      if (entry.at.length >= FLAP_THRESHOLD) {
        out.push({
          kind: 'flapping',
          severity: 'warning',
          key: `flapping:${endpoint}`,
          message: `worker ${entry.workerId} (${endpoint}) went offline ${entry.at.length} times in the last ${FLAP_WINDOW_MS / 1000} s`,
        });
      }
    }
    for (const a of this.published.values()) {
      out.push({ kind: a.kind, severity: a.level, key: a.key, message: a.message });
    }
    const keys = new Set(out.map((a) => a.key));
    for (const k of this.alertSince.keys()) if (!keys.has(k)) this.alertSince.delete(k);
    return out.map((a) => {
      const since = this.alertSince.get(a.key) ?? now;
      this.alertSince.set(a.key, since);
      return { ...a, since };
    });
  }
}

/**
 * The fields of a task row, copied from a task event into a fixed shape (no spreads, no strings built): cheap
 * enough to keep up to date on every transition. `toRow` makes the row from it when a dashboard reads.
 */
class RowSource {
  id!: string;
  capability!: string;
  type!: string;
  state!: TaskState;
  workerId: string | undefined;
  attempt!: number;
  maxAttempts!: number;
  createdAt!: number;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  error: TaskRecord['error'];
  updatedAt!: number;

  constructor(task: TaskRecord, type: string) {
    this.update(task, type);
  }

  update(task: TaskRecord, type: string): void {
    this.id = task.id;
    this.capability = task.capability;
    this.type = type;
    this.state = task.state;
    this.workerId = task.workerId;
    this.attempt = task.attempt;
    this.maxAttempts = task.maxAttempts;
    this.createdAt = task.createdAt;
    this.startedAt = task.startedAt ?? task.attempts[task.attempts.length - 1]?.startedAt;
    this.finishedAt = task.finishedAt;
    this.error = task.error;
    this.updatedAt = task.updatedAt;
  }

  durationMs(): number | undefined {
    return this.startedAt !== undefined && this.finishedAt !== undefined
      ? Math.max(0, this.finishedAt - this.startedAt)
      : undefined;
  }
}

function toRow(s: RowSource): TaskRow {
  const start = s.startedAt;
  const end = s.finishedAt;
  const durationMs = s.durationMs();
  return {
    id: s.id,
    capability: s.capability,
    type: s.type,
    state: s.state,
    ...(s.workerId ? { workerId: s.workerId } : {}),
    attempt: s.attempt,
    maxAttempts: s.maxAttempts,
    createdAt: s.createdAt,
    ...(start !== undefined ? { startedAt: start } : {}),
    ...(end !== undefined ? { finishedAt: end } : {}),
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(s.error ? { error: clip(`${s.error.code}: ${s.error.message}`, 200) } : {}),
    updatedAt: s.updatedAt,
  };
}

function toWorkerRow(v: WorkerStatusView, now: number): WorkerRow {
  const d = describeInfo(v.info ?? {});
  return {
    id: v.workerId,
    type: v.workerType,
    status: v.status,
    draining: v.draining,
    load: v.currentLoad,
    inFlight: v.inFlight,
    max: v.maxConcurrency,
    heartbeatAgeMs: Math.max(0, now - new Date(v.lastHeartbeat).getTime()),
    uptimeS: v.metrics.uptime,
    memory: v.metrics.memoryUsage,
    cpu: v.metrics.cpuUsage,
    endpoint: v.endpoint,
    version: v.version,
    ...(d ? { detail: d.detail, detailWarn: d.warn } : {}),
  };
}

function summarizeTypes(workers: WorkerRow[], queueByType: Record<string, number>): TypeRow[] {
  const byType = new Map<string, TypeRow>();
  const row = (type: string): TypeRow => {
    let r = byType.get(type);
    if (!r) {
      r = {
        type,
        workers: 0,
        online: 0,
        busy: 0,
        offline: 0,
        error: 0,
        inFlight: 0,
        capacity: 0,
        free: 0,
        queued: 0,
      };
      byType.set(type, r);
    }
    return r;
  };
  const load = loadByType(
    workers.map((w) => ({
      workerType: w.type,
      status: w.status,
      draining: w.draining,
      inFlight: w.inFlight,
      maxConcurrency: w.max,
    })),
  );
  for (const [type, l] of load) {
    const r = row(type);
    r.workers = l.workers;
    r.online = l.online;
    r.busy = l.busy;
    r.offline = l.offline;
    r.error = l.error;
    r.inFlight = l.inFlight;
    r.capacity = l.capacity;
    r.free = l.free;
  }
  for (const [type, n] of Object.entries(queueByType)) {
    // Configured types with no worker and nothing queued are noise on the board.
    if (n > 0 || byType.has(type)) row(type).queued = n;
  }
  return [...byType.values()].sort((a, b) => a.type.localeCompare(b.type));
}
