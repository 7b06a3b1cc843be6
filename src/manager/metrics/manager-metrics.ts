/**
 * The manager's Prometheus metrics: its own (queue depth, wait time, dispatch latency, outcomes, stale
 * results) and the spec's WorkerMetrics for every worker, read from the registry at scrape time so there is
 * one source of truth.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TaskQueue } from '../queue/task-queue.js';
import type { TaskRecord } from '../queue/task.js';
import { emptyLoad, loadByType, utilization } from '../registry/fleet-load.js';
import type { WorkerStatusView } from '../registry/worker-registry.js';

/** What a distributed queue (RedisTaskQueue) exposes beyond the TaskQueue interface. */
interface DistributedQueueStats {
  heldCount(): number;
  staleLeaseCount: number;
}

export interface MetricsSources {
  queue: TaskQueue;
  workers: () => Promise<WorkerStatusView[]>;
  capabilitiesByType: () => Map<string, string[]>;
}

/** Shares one read among the gauges of a scrape; a read older than `ttlMs` is done again. */
function readOncePerScrape<T>(read: () => Promise<T>, ttlMs = 250): () => Promise<T> {
  let at = 0;
  let value: Promise<T> | undefined;
  return () => {
    const now = Date.now();
    if (!value || now - at > ttlMs) {
      at = now;
      value = read();
    }
    return value;
  };
}

/**
 * Per-worker totals that only go up (the spec's taskCount and errorCount): Prometheus counters, so rate()
 * works on them. The registry keeps them across a reconnect and a worker keeps its id across restarts, so the
 * series continues; a manager restart starts them again from 0, which rate() reads as a counter reset.
 */
const WORKER_COUNTERS = [
  [
    'fleet_worker_finished_tasks_total',
    'Tasks finished by the worker (the spec taskCount)',
    (m: WorkerStatusView) => m.metrics.taskCount,
  ],
  [
    'fleet_worker_failed_tasks_total',
    'Tasks that failed on the worker (the spec errorCount)',
    (m: WorkerStatusView) => m.metrics.errorCount,
  ],
] as const;

const WORKER_GAUGES = [
  [
    'fleet_worker_average_response_seconds',
    'Average task time on the worker',
    (m: WorkerStatusView) => m.metrics.averageResponseTime / 1000,
  ],
  [
    'fleet_worker_success_ratio',
    'Share of the worker tasks that succeeded',
    (m: WorkerStatusView) => m.metrics.successRate,
  ],
  [
    'fleet_worker_cpu_ratio',
    'CPU of the worker (fraction of one core)',
    (m: WorkerStatusView) => m.metrics.cpuUsage,
  ],
  [
    'fleet_worker_memory_bytes',
    'Resident memory of the worker',
    (m: WorkerStatusView) => m.metrics.memoryUsage,
  ],
  [
    'fleet_worker_disk_usage_ratio',
    'Used fraction of the worker workspace disk',
    (m: WorkerStatusView) => m.metrics.diskUsage,
  ],
  [
    'fleet_worker_connections',
    'Open manager connections to the worker',
    (m: WorkerStatusView) => m.metrics.connectionCount,
  ],
  [
    'fleet_worker_uptime_seconds',
    'Time since the worker connected',
    (m: WorkerStatusView) => m.metrics.uptime,
  ],
  [
    'fleet_worker_last_health_check_timestamp_seconds',
    'Last successful deep health check',
    (m: WorkerStatusView) => (m.metrics.lastHealthCheck ? m.metrics.lastHealthCheck.getTime() / 1000 : 0),
  ],
  ['fleet_worker_in_flight', 'Tasks running on the worker', (m: WorkerStatusView) => m.inFlight],
  ['fleet_worker_max_concurrency', 'Slots of the worker', (m: WorkerStatusView) => m.maxConcurrency],
  ['fleet_worker_load_ratio', 'In flight / max concurrency', (m: WorkerStatusView) => m.currentLoad],
] as const;

export class ManagerMetrics {
  readonly registry = new Registry();
  readonly framesRejected: Counter<'code'>;
  readonly staleResults: Counter;
  readonly reexecutions: Counter<'capability' | 'reason'>;
  readonly reconciled: Counter<'outcome'>;
  readonly tasksFinished: Counter<'capability' | 'state'>;
  private readonly waitTime: Histogram<'capability'>;
  private readonly dispatchLatency: Histogram;
  private readonly taskDuration: Histogram<'capability' | 'state'>;

  constructor(sources: MetricsSources, options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'fleet_manager_' });
    const r = [this.registry];
    this.framesRejected = new Counter({
      name: 'fleet_frames_rejected_total',
      help: 'Frames from workers rejected at the edge',
      labelNames: ['code'],
      registers: r,
    });
    this.staleResults = new Counter({
      name: 'fleet_stale_results_total',
      help: 'Results or errors dropped because their lease was not current',
      registers: r,
    });
    this.reexecutions = new Counter({
      name: 'fleet_task_reexecutions_total',
      help: 'Dispatches of a task whose previous attempt may have run (worker lost or timed out): the at-least-once cases',
      labelNames: ['capability', 'reason'],
      registers: r,
    });
    this.reconciled = new Counter({
      name: 'fleet_reconciled_tasks_total',
      help: 'Tasks a reconnecting worker reported (running or finished): adopted (lease current, not run again), cancelled on it (lease not current), refused (a lease of another worker, or over the report bound)',
      labelNames: ['outcome'],
      registers: r,
    });
    this.tasksFinished = new Counter({
      name: 'fleet_tasks_finished_total',
      help: 'Tasks that reached a final state',
      labelNames: ['capability', 'state'],
      registers: r,
    });
    this.waitTime = new Histogram({
      name: 'fleet_task_wait_seconds',
      help: 'Time a task waited in the queue before dispatch',
      labelNames: ['capability'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers: r,
    });
    this.dispatchLatency = new Histogram({
      name: 'fleet_dispatch_latency_seconds',
      help: 'Time from claiming a task to writing its assign frame to the worker',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers: r,
    });
    this.taskDuration = new Histogram({
      name: 'fleet_task_duration_seconds',
      help: 'Time from submission to a final state',
      labelNames: ['capability', 'state'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 15, 30, 60, 300],
      registers: r,
    });
    // A scrape collects every gauge in turn; they share one read of the fleet and the queue depths, so a
    // scrape costs one directory listing (a Redis call in distributed mode), not one per gauge.
    const workers = readOncePerScrape(sources.workers);
    const depths = readOncePerScrape(async () => {
      const byCapability = new Map<string, number>();
      for (const caps of sources.capabilitiesByType().values()) {
        for (const c of caps) if (!byCapability.has(c)) byCapability.set(c, await sources.queue.depth(c));
      }
      return byCapability;
    });
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (set: (labels: Record<L, string>, value: number) => void) => Promise<void>,
    ) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers: r,
        async collect() {
          this.reset();
          await fill((labels, value) => this.set(labels, value));
        },
      });

    gauge('fleet_queue_depth', 'Tasks waiting, per capability', ['capability'], async (set) => {
      for (const [capability, n] of await depths()) set({ capability }, n);
    });
    gauge(
      'fleet_worker_type_utilization',
      '(in flight + queued) / capacity per worker type: the autoscaling signal',
      ['worker_type'],
      async (set) => {
        const all = await workers();
        const depth = await depths();
        const load = loadByType(all);
        for (const [type, caps] of sources.capabilitiesByType()) {
          const queued = caps.reduce((n, c) => n + (depth.get(c) ?? 0), 0);
          const u = utilization(load.get(type) ?? emptyLoad(type), queued);
          set({ worker_type: type }, u ?? (queued > 0 ? 1e6 : 0));
        }
      },
    );
    gauge(
      'fleet_worker_up',
      '1 when the worker is online or busy',
      ['worker_id', 'worker_type', 'status'],
      async (set) => {
        for (const w of await workers()) {
          const up = w.status === 'online' || w.status === 'busy' ? 1 : 0;
          set({ worker_id: w.workerId, worker_type: w.workerType, status: w.status }, up);
        }
      },
    );
    // The Redis queue counts what only it can see: locks this process holds, and late results its fence
    // refused (also those the dispatcher never saw, e.g. after a lock expired in another manager's favour).
    const queue = sources.queue as Partial<DistributedQueueStats>;
    if (typeof queue.heldCount === 'function') {
      const held = queue.heldCount.bind(queue);
      gauge(
        'fleet_queue_held_tasks',
        'Tasks this manager holds a lock for in the shared queue',
        [],
        async (set) => set({}, held()),
      );
    }
    if (typeof queue.staleLeaseCount === 'number') {
      gauge(
        'fleet_queue_stale_leases',
        'Late results the shared queue refused because their lease was no longer current (since start)',
        [],
        async (set) => set({}, (sources.queue as Partial<DistributedQueueStats>).staleLeaseCount ?? 0),
      );
    }
    for (const [name, help, read] of WORKER_GAUGES) {
      gauge(name, help, ['worker_id', 'worker_type'], async (set) => {
        for (const w of await workers()) set({ worker_id: w.workerId, worker_type: w.workerType }, read(w));
      });
    }
    for (const [name, help, read] of WORKER_COUNTERS) {
      new Counter<'worker_id' | 'worker_type'>({
        name,
        help,
        labelNames: ['worker_id', 'worker_type'],
        registers: r,
        async collect() {
          // The registry holds the running total; a counter has no set(), so reset and add it.
          this.reset();
          for (const w of await workers())
            this.inc({ worker_id: w.workerId, worker_type: w.workerType }, read(w));
        },
      });
    }
  }

  /** Queue wait: from the moment the task could run (created, or its backoff over) until it was claimed. */
  observeWait(task: TaskRecord, claimedAt: number): void {
    const readyAt = Math.max(task.createdAt, task.notBefore);
    this.waitTime.observe({ capability: task.capability }, Math.max(0, claimedAt - readyAt) / 1000);
  }

  /** The manager's own cost of a dispatch: from the claim until the assign frame is written. */
  observeDispatchLatency(claimedAt: number, sentAt: number): void {
    this.dispatchLatency.observe(Math.max(0, sentAt - claimedAt) / 1000);
  }

  observeFinished(task: TaskRecord, now: number): void {
    this.tasksFinished.inc({ capability: task.capability, state: task.state });
    this.taskDuration.observe(
      { capability: task.capability, state: task.state },
      Math.max(0, now - task.createdAt) / 1000,
    );
  }
}
