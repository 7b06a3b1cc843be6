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
  /** When the last liveness tick ran; a long gap means this process was paused, not the workers. */
  private lastTick: number | undefined;
  /** After this manager was paused, silence before this time is its own fault, not the workers'. */
  private resumedAt = 0;

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
    this.lastTick = undefined;
    this.liveTimer?.cancel();
    this.deepTimer?.cancel();
    this.liveTimer = this.deepTimer = undefined;
  }

  /**
   * Declares dead every connected worker that has been silent past the policy, and returns the suspects.
   *
   * Two things make silence lie. (1) This process was paused (SIGSTOP, a long GC, a starved VM): every
   * worker looks silent, yet their heartbeats and results are waiting unread in the sockets. A tick that
   * comes far later than scheduled gives every worker a fresh window from the resume. (2) Timers run before
   * the event loop polls sockets, so even a normal suspect is judged only after one poll phase
   * (setImmediate), on its state after whatever was buffered has been read.
   */
  checkLiveness(): string[] {
    const now = this.o.clock.now();
    const tickMs = Math.max(50, this.o.policy.heartbeatIntervalMs / 2);
    const window = this.o.policy.heartbeatIntervalMs * this.o.policy.missedHeartbeats;
    if (this.lastTick !== undefined && now - this.lastTick > Math.max(3 * tickMs, window / 2)) {
      this.o.logger.warn(
        { pausedMs: now - this.lastTick - tickMs },
        'this manager was paused; giving workers a fresh heartbeat window before judging them',
      );
      this.resumedAt = now;
    }
    this.lastTick = now;
    const suspects: string[] = [];
    for (const w of this.o.registry.list()) {
      if (w.baseStatus === 'offline' || !this.o.dispatcher.isConnected(w.workerId)) continue;
      if (liveness(Math.max(w.lastHeartbeat, this.resumedAt), now, this.o.policy) === 'dead')
        suspects.push(w.workerId);
    }
    if (suspects.length > 0) setImmediate(() => this.judge(suspects));
    return suspects;
  }

  private judge(suspects: string[]): void {
    const now = this.o.clock.now();
    for (const workerId of suspects) {
      const w = this.o.registry.get(workerId);
      if (!w || w.baseStatus === 'offline' || !this.o.dispatcher.isConnected(workerId)) continue;
      const seen = Math.max(w.lastHeartbeat, this.resumedAt);
      if (liveness(seen, now, this.o.policy) !== 'dead') continue;
      this.o.logger.warn({ workerId, silentMs: now - seen }, 'worker missed its heartbeats; marking offline');
      void this.o.dispatcher.workerLost(workerId, `no heartbeat for ${now - seen} ms`, {
        felled: true,
        hold: true,
      });
    }
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
