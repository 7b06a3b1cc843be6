/**
 * The manager's live view of the workers it holds connections to (the spec's WorkerRegistry). It owns the
 * per-worker accounting the balancer needs (in flight, capacity, latency) and the spec's WorkerMetrics.
 *
 * `busy` is derived, never stored: a worker is busy when every slot is taken, which is not an error and not
 * dead. The stored base status is online, offline or error.
 */
import { EventEmitter } from 'node:events';
import { FleetError } from '../../protocol/errors.js';
import type { WorkerInfo, WorkerStatus } from './worker-info.js';

export interface WorkerMetrics {
  workerId: string;
  workerType: string;
  taskCount: number;
  averageResponseTime: number;
  successRate: number;
  errorCount: number;
  cpuUsage: number;
  memoryUsage: number;
  diskUsage: number;
  connectionCount: number;
  uptime: number;
  lastHealthCheck: Date | null;
}

export interface LiveWorker {
  workerId: string;
  workerType: string;
  endpoint: string;
  port: number;
  capabilities: string[];
  maxConcurrency: number;
  version: string;
  baseStatus: Exclude<WorkerStatus, 'busy'>;
  inFlight: number;
  draining: boolean;
  lastHeartbeat: number;
  connectedAt: number;
  info: Record<string, unknown>;
  cpu: number;
  memory: number;
  disk: number;
  taskCount: number;
  successCount: number;
  errorCount: number;
  totalResponseMs: number;
  ewmaLatencyMs: number | undefined;
  lastHealthCheck: number | undefined;
  healthFailures: number;
  ownerId?: string;
}

export interface WorkerStatusView extends WorkerInfo {
  maxConcurrency: number;
  inFlight: number;
  draining: boolean;
  version: string;
  info: Record<string, unknown>;
  metrics: WorkerMetrics;
  ownerId?: string;
}

export function statusOf(w: LiveWorker): WorkerStatus {
  if (w.baseStatus !== 'online') return w.baseStatus;
  return w.inFlight >= w.maxConcurrency || w.draining ? 'busy' : 'online';
}

export function viewOf(w: LiveWorker, now: number): WorkerStatusView {
  const finished = w.successCount + w.errorCount;
  return {
    workerId: w.workerId,
    workerType: w.workerType,
    endpoint: w.endpoint,
    port: w.port,
    status: statusOf(w),
    capabilities: [...w.capabilities],
    currentLoad: w.maxConcurrency > 0 ? w.inFlight / w.maxConcurrency : 0,
    lastHeartbeat: new Date(w.lastHeartbeat),
    maxConcurrency: w.maxConcurrency,
    inFlight: w.inFlight,
    draining: w.draining,
    version: w.version,
    info: w.info,
    ...(w.ownerId ? { ownerId: w.ownerId } : {}),
    metrics: {
      workerId: w.workerId,
      workerType: w.workerType,
      taskCount: w.taskCount,
      averageResponseTime: finished > 0 ? w.totalResponseMs / finished : 0,
      successRate: finished > 0 ? w.successCount / finished : 1,
      errorCount: w.errorCount,
      cpuUsage: w.cpu,
      memoryUsage: w.memory,
      diskUsage: w.disk,
      connectionCount: w.baseStatus === 'offline' ? 0 : 1,
      uptime: w.baseStatus === 'offline' ? 0 : Math.max(0, (now - w.connectedAt) / 1000),
      lastHealthCheck: w.lastHealthCheck === undefined ? null : new Date(w.lastHealthCheck),
    },
  };
}

export type RegistryEvent = { kind: 'registered' | 'updated' | 'unregistered'; worker: LiveWorker };

export class WorkerRegistry {
  private readonly workers = new Map<string, LiveWorker>();
  private readonly events = new EventEmitter();

  constructor(private readonly now: () => number = Date.now) {
    this.events.setMaxListeners(0);
  }

  async registerWorker(
    worker: Pick<
      LiveWorker,
      'workerId' | 'workerType' | 'endpoint' | 'port' | 'capabilities' | 'maxConcurrency' | 'version'
    > &
      Partial<LiveWorker>,
  ): Promise<LiveWorker> {
    const previous = this.workers.get(worker.workerId);
    const now = this.now();
    const record: LiveWorker = {
      baseStatus: 'online',
      inFlight: 0,
      draining: false,
      lastHeartbeat: now,
      connectedAt: now,
      info: {},
      cpu: 0,
      memory: 0,
      disk: 0,
      // Counters survive a reconnect: they describe the worker, not the connection.
      taskCount: previous?.taskCount ?? 0,
      successCount: previous?.successCount ?? 0,
      errorCount: previous?.errorCount ?? 0,
      totalResponseMs: previous?.totalResponseMs ?? 0,
      ewmaLatencyMs: previous?.ewmaLatencyMs,
      lastHealthCheck: previous?.lastHealthCheck,
      healthFailures: 0,
      ...worker,
    };
    this.workers.set(worker.workerId, record);
    this.emit(previous ? 'updated' : 'registered', record);
    return record;
  }

  async unregisterWorker(workerId: string): Promise<void> {
    const w = this.workers.get(workerId);
    if (!w) return;
    this.workers.delete(workerId);
    this.emit('unregistered', w);
  }

  /** Workers that can take work now or soon (online or busy), optionally of one type. */
  async getAvailableWorkers(type?: string): Promise<WorkerInfo[]> {
    const now = this.now();
    return [...this.workers.values()]
      .filter(
        (w) => w.baseStatus === 'online' && !w.draining && (type === undefined || w.workerType === type),
      )
      .map((w) => viewOf(w, now));
  }

  async updateWorkerStatus(workerId: string, status: Exclude<WorkerStatus, 'busy'>): Promise<void> {
    const w = this.require(workerId);
    if (w.baseStatus === status) return;
    w.baseStatus = status;
    this.emit('updated', w);
  }

  get(workerId: string): LiveWorker | undefined {
    return this.workers.get(workerId);
  }

  require(workerId: string): LiveWorker {
    const w = this.workers.get(workerId);
    if (!w) throw new FleetError('not_found', `no worker ${workerId}`);
    return w;
  }

  list(): LiveWorker[] {
    return [...this.workers.values()];
  }

  views(): WorkerStatusView[] {
    const now = this.now();
    return this.list().map((w) => viewOf(w, now));
  }

  /** Call after mutating a LiveWorker in place, so listeners see the change. */
  touch(worker: LiveWorker): void {
    this.emit('updated', worker);
  }

  recordOutcome(workerId: string, ok: boolean, responseMs: number): void {
    const w = this.workers.get(workerId);
    if (!w) return;
    w.taskCount += 1;
    if (ok) w.successCount += 1;
    else w.errorCount += 1;
    w.totalResponseMs += responseMs;
    w.ewmaLatencyMs = w.ewmaLatencyMs === undefined ? responseMs : w.ewmaLatencyMs * 0.8 + responseMs * 0.2;
  }

  subscribe(listener: (event: RegistryEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  private emit(kind: RegistryEvent['kind'], worker: LiveWorker): void {
    this.events.emit('event', { kind, worker });
  }
}
