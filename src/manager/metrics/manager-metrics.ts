/**
 * The manager's Prometheus metrics: its own (queue depth, wait time, dispatch latency, outcomes, stale
 * results) and the spec's WorkerMetrics for every worker, read from the registry at scrape time so there is
 * one source of truth.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TaskQueue } from '../queue/task-queue.js';
import type { TaskRecord } from '../queue/task.js';
import type { WorkerStatusView } from '../registry/worker-registry.js';

export interface MetricsSources {
  queue: TaskQueue;
  workers: () => Promise<WorkerStatusView[]>;
  capabilitiesByType: () => Map<string, string[]>;
}

const WORKER_GAUGES = [
  [
    'fleet_worker_task_count',
    'Tasks finished by the worker (the spec taskCount)',
    (m: WorkerStatusView) => m.metrics.taskCount,
  ],
  [
    'fleet_worker_average_response_seconds',
    'Average task time on the worker',
    (m: WorkerStatusView) => m.metrics.averageResponseTime / 1000,
  ],
  [
    'fleet_worker_success_rate',
    'Share of the worker tasks that succeeded',
    (m: WorkerStatusView) => m.metrics.successRate,
  ],
  [
    'fleet_worker_error_count',
    'Tasks that failed on the worker',
    (m: WorkerStatusView) => m.metrics.errorCount,
  ],
  [
    'fleet_worker_cpu_usage',
    'CPU of the worker (fraction of one core)',
    (m: WorkerStatusView) => m.metrics.cpuUsage,
  ],
  [
    'fleet_worker_memory_bytes',
    'Resident memory of the worker',
    (m: WorkerStatusView) => m.metrics.memoryUsage,
  ],
  [
    'fleet_worker_disk_usage',
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
  ['fleet_worker_load', 'In flight / max concurrency', (m: WorkerStatusView) => m.currentLoad],
] as const;

export class ManagerMetrics {
  readonly registry = new Registry();
  readonly framesRejected: Counter<'code'>;
  readonly staleResults: Counter;
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
      help: 'Time from a task becoming ready to its dispatch to a worker',
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
    const depth = new Gauge({
      name: 'fleet_queue_depth',
      help: 'Tasks waiting, per capability',
      labelNames: ['capability'],
      registers: r,
      async collect() {
        this.reset();
        for (const caps of sources.capabilitiesByType().values()) {
          for (const c of caps) this.set({ capability: c }, await sources.queue.depth(c));
        }
      },
    });
    void depth;
    new Gauge({
      name: 'fleet_worker_type_utilization',
      help: '(in flight + queued) / capacity per worker type: the autoscaling signal',
      labelNames: ['worker_type'],
      registers: r,
      async collect() {
        this.reset();
        const workers = await sources.workers();
        for (const [type, caps] of sources.capabilitiesByType()) {
          const live = workers.filter((w) => w.workerType === type && w.status !== 'offline');
          const capacity = live.reduce((n, w) => n + w.maxConcurrency, 0);
          const inFlight = live.reduce((n, w) => n + w.inFlight, 0);
          let queued = 0;
          for (const c of caps) queued += await sources.queue.depth(c);
          this.set(
            { worker_type: type },
            capacity > 0 ? (inFlight + queued) / capacity : queued > 0 ? 1e6 : 0,
          );
        }
      },
    });
    new Gauge({
      name: 'fleet_worker_up',
      help: '1 when the worker is online or busy',
      labelNames: ['worker_id', 'worker_type', 'status'],
      registers: r,
      async collect() {
        this.reset();
        for (const w of await sources.workers()) {
          this.set(
            { worker_id: w.workerId, worker_type: w.workerType, status: w.status },
            w.status === 'online' || w.status === 'busy' ? 1 : 0,
          );
        }
      },
    });
    for (const [name, help, read] of WORKER_GAUGES) {
      new Gauge({
        name,
        help,
        labelNames: ['worker_id', 'worker_type'],
        registers: r,
        async collect() {
          this.reset();
          for (const w of await sources.workers())
            this.set({ worker_id: w.workerId, worker_type: w.workerType }, read(w));
        },
      });
    }
  }

  observeDispatch(task: TaskRecord, now: number): void {
    const readyAt = Math.max(task.createdAt, task.notBefore);
    const waited = Math.max(0, now - readyAt) / 1000;
    this.waitTime.observe({ capability: task.capability }, waited);
    this.dispatchLatency.observe(waited);
  }

  observeFinished(task: TaskRecord, now: number): void {
    this.tasksFinished.inc({ capability: task.capability, state: task.state });
    this.taskDuration.observe(
      { capability: task.capability, state: task.state },
      Math.max(0, now - task.createdAt) / 1000,
    );
  }
}
