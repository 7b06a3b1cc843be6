/**
 * A worker's Prometheus metrics. Each server owns its own Registry (never prom-client's global one): tests and
 * `fleet up --embedded` run several workers in one process, and each must report only itself.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const TASK_OUTCOMES = ['succeeded', 'failed', 'timed_out', 'cancelled', 'rejected'] as const;
export type TaskOutcome = (typeof TASK_OUTCOMES)[number];

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly tasks: Counter<'capability' | 'outcome'>;
  readonly duration: Histogram<'capability' | 'outcome'>;
  readonly inFlight: Gauge;
  readonly maxConcurrency: Gauge;
  readonly framesRejected: Counter<'code'>;
  readonly connections: Gauge;

  constructor(labels: { workerType: string; workerId: string }) {
    this.registry.setDefaultLabels({ worker_type: labels.workerType, worker_id: labels.workerId });
    const registers = [this.registry];
    this.tasks = new Counter({
      name: 'fleet_worker_tasks_total',
      help: 'Tasks answered by this worker, by capability and outcome (rejected = refused before running).',
      labelNames: ['capability', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'fleet_worker_task_duration_seconds',
      help: 'Time from task.assign to its answer.',
      labelNames: ['capability', 'outcome'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'fleet_worker_in_flight',
      help: 'Task slots in use (a task keeps its slot until its handler has really stopped).',
      registers,
    });
    this.maxConcurrency = new Gauge({
      name: 'fleet_worker_max_concurrency',
      help: 'Task slots this worker has (max_concurrent_tasks).',
      registers,
    });
    this.framesRejected = new Counter({
      name: 'fleet_worker_frames_rejected_total',
      help: 'Inbound frames or connections refused with a typed error, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.connections = new Gauge({
      name: 'fleet_worker_connections',
      help: 'Open manager WebSocket connections.',
      registers,
    });
    collectDefaultMetrics({ register: this.registry });
  }
}
