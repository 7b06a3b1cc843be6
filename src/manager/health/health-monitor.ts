/**
 * The spec's HealthMonitor, on two speeds:
 * - fast liveness: every heartbeat period, a worker silent for too long is declared dead (its socket is cut
 *   and its tasks re-queued at once). A closed socket is caught sooner still, by the dispatcher.
 * - deep readiness: every `intervalMs` (30 s), `GET /health` with a `timeoutMs` (5 s) deadline. A worker that
 *   fails it `unhealthyThreshold` times in a row is drained, marked `error`, and restarted when Fleet
 *   supervises its process.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { WorkerRegistry } from '../registry/worker-registry.js';
import { afterDeepCheck, liveness, readiness, type HealthPolicy } from './health-state.js';

export interface HealthResult {
  workerId: string;
  ok: boolean;
  status?: number;
  latencyMs: number;
  body?: unknown;
  error?: string;
}

export interface HealthMonitorOptions {
  registry: WorkerRegistry;
  dispatcher: Dispatcher;
  clock: Clock;
  logger: Logger;
  policy: HealthPolicy;
  intervalMs: number;
  timeoutMs: number;
  healthPath?: string;
  /** Restarts a worker's process when Fleet supervises it; resolves false when it cannot. */
  restart?: (workerId: string) => Promise<boolean>;
  /** The deep check; defaults to `GET http://host:port/health`. Injectable for tests. */
  probe?: (endpoint: string, signal: AbortSignal) => Promise<{ status: number; body: unknown }>;
}

export function healthUrl(endpoint: string, path = '/health'): string {
  const url = new URL(endpoint);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = path;
  url.search = '';
  return url.toString();
}

async function httpProbe(
  endpoint: string,
  signal: AbortSignal,
  path?: string,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(healthUrl(endpoint, path), { signal });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // A non-JSON body is still an answer; keep the text.
  }
  return { status: res.status, body };
}

export class HealthMonitor {
  private liveTimer: TimerHandle | undefined;
  private deepTimer: TimerHandle | undefined;
  private readonly deep = new Map<string, { consecutiveFailures: number; lastSuccess: number | undefined }>();

  constructor(private readonly o: HealthMonitorOptions) {}

  async startMonitoring(): Promise<void> {
    this.stopMonitoring();
    this.liveTimer = this.o.clock.setInterval(
      () => this.checkLiveness(),
      Math.max(50, this.o.policy.heartbeatIntervalMs / 2),
    );
    this.deepTimer = this.o.clock.setInterval(() => void this.checkAll(), this.o.intervalMs);
  }

  stopMonitoring(): void {
    this.liveTimer?.cancel();
    this.deepTimer?.cancel();
    this.liveTimer = this.deepTimer = undefined;
  }

  /** Declares dead every connected worker that has been silent past the policy. */
  checkLiveness(): string[] {
    const now = this.o.clock.now();
    const dead: string[] = [];
    for (const w of this.o.registry.list()) {
      if (w.baseStatus === 'offline' || !this.o.dispatcher.isConnected(w.workerId)) continue;
      if (liveness(w.lastHeartbeat, now, this.o.policy) === 'dead') {
        dead.push(w.workerId);
        this.o.logger.warn(
          { workerId: w.workerId, silentMs: now - w.lastHeartbeat },
          'worker missed its heartbeats; marking offline',
        );
        void this.o.dispatcher.workerLost(w.workerId, `no heartbeat for ${now - w.lastHeartbeat} ms`);
      }
    }
    return dead;
  }

  async checkAll(): Promise<HealthResult[]> {
    const targets = this.o.registry.list().filter((w) => w.baseStatus !== 'offline');
    return Promise.all(targets.map((w) => this.performHealthCheck(w.workerId)));
  }

  async performHealthCheck(workerId: string): Promise<HealthResult> {
    const worker = this.o.registry.require(workerId);
    const started = this.o.clock.now();
    const signal = AbortSignal.timeout(this.o.timeoutMs);
    let result: HealthResult;
    try {
      const { status, body } = await (this.o.probe ?? ((e, s) => httpProbe(e, s, this.o.healthPath)))(
        worker.endpoint,
        signal,
      );
      // 503 while draining is an honest answer, not a failure.
      const draining =
        typeof body === 'object' && body !== null && (body as { status?: unknown }).status === 'draining';
      result = {
        workerId,
        ok: status === 200 || draining,
        status,
        body,
        latencyMs: this.o.clock.now() - started,
      };
    } catch (err) {
      result = {
        workerId,
        ok: false,
        latencyMs: this.o.clock.now() - started,
        error: (err as Error).message,
      };
    }
    const state = afterDeepCheck(
      this.deep.get(workerId) ?? { consecutiveFailures: 0, lastSuccess: undefined },
      result.ok,
      this.o.clock.now(),
    );
    this.deep.set(workerId, state);
    worker.healthFailures = state.consecutiveFailures;
    if (result.ok) {
      worker.lastHealthCheck = this.o.clock.now();
      if (worker.baseStatus === 'error') worker.baseStatus = 'online';
      this.o.registry.touch(worker);
    } else if (readiness(state, this.o.policy) === 'unhealthy' && worker.baseStatus !== 'error') {
      await this.handleUnhealthyWorker(workerId);
    }
    return result;
  }

  async handleUnhealthyWorker(workerId: string): Promise<void> {
    const worker = this.o.registry.require(workerId);
    this.o.logger.warn(
      { workerId, failures: worker.healthFailures },
      'worker failed its deep health checks; draining',
    );
    await this.o.dispatcher.drain(workerId, 'unhealthy').catch(() => undefined);
    worker.baseStatus = 'error';
    this.o.registry.touch(worker);
    await this.restartWorker(workerId);
  }

  async restartWorker(workerId: string): Promise<boolean> {
    if (!this.o.restart) return false;
    const ok = await this.o.restart(workerId).catch((err: unknown) => {
      this.o.logger.error({ err, workerId }, 'restart failed');
      return false;
    });
    if (ok) this.deep.delete(workerId);
    return ok;
  }
}
