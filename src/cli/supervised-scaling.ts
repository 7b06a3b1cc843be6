/**
 * Auto-scaling for `fleet up`: each autoscaled worker kind becomes an Autoscaler target whose instances are
 * supervised child processes. Extra instances get free ports and register like any spawned worker; an
 * instance that goes is drained first (no new task, its running ones finish) and only then stopped, so a
 * scale-down never cuts a task.
 *
 * The instance on the configured port is the base and never goes: clients and docs point at it, so
 * `min: 0` acts as 1 here.
 */
import type { Logger } from 'pino';
import type { WorkerSectionConfig } from '../config/schema.js';
import { normalizeEndpoint, type WorkerManager } from '../manager/public.js';
import {
  Autoscaler,
  scalingPolicyFromConfig,
  type HostResources,
  type ScalingSignal,
  type ScalingTarget,
} from '../manager/public.js';
import { freePort, type ChildSpec, type SupervisedChild, type Supervisor } from './supervisor.js';

/** How long a new instance may take to answer /health before it is registered anyway (discovery retries). */
const START_TIMEOUT_MS = 30_000;
/** Added to the kind's task timeout when waiting for a drained instance's tasks to end. */
const DRAIN_SLACK_MS = 5_000;

export interface SupervisedScalingDeps {
  manager: WorkerManager;
  supervisor: Supervisor;
  logger: Logger;
  /** The child spec of an instance of `workerType` on `port`. */
  childSpec(workerType: string, port: number): ChildSpec;
  /** Aborted when fleet up stops: waits for starting or draining instances end early. */
  signal: AbortSignal;
}

export class SupervisedScalingTarget implements ScalingTarget {
  private cached: ScalingSignal = { inFlight: 0, queued: 0, capacity: 0 };

  constructor(
    readonly workerType: string,
    private readonly section: WorkerSectionConfig,
    private readonly deps: SupervisedScalingDeps,
  ) {}

  /** Instances of this kind the supervisor runs (parked ones included: a parked kind needs a human, not more copies). */
  current(): number {
    return this.children().length;
  }

  /** The last signal read by `refresh()`: queue depths are async, a scaling target's signal is not. */
  signal(): ScalingSignal {
    return this.cached;
  }

  async refresh(): Promise<void> {
    const { manager } = this.deps;
    const capabilities = manager.capabilitiesByType().get(this.workerType) ?? this.section.capabilities;
    let queued = 0;
    for (const capability of capabilities) queued += await manager.queueDepth(capability);
    const load = manager.loadByType().get(this.workerType);
    this.cached = { inFlight: load?.inFlight ?? 0, queued, capacity: load?.capacity ?? 0 };
  }

  async scaleTo(n: number, reason: string): Promise<void> {
    const children = this.children();
    if (n > children.length) {
      this.deps.logger.info(
        { workerType: this.workerType, from: children.length, to: n, reason },
        'starting worker instances',
      );
      await Promise.all(Array.from({ length: n - children.length }, () => this.startInstance()));
      return;
    }
    // The newest extras go first; the base instance on the configured port never does.
    const extras = children
      .filter((c) => c.spec.port !== this.section.port)
      .sort((a, b) => childSeq(b) - childSeq(a));
    const leaving = extras.slice(0, children.length - n);
    if (leaving.length === 0) return;
    this.deps.logger.info(
      { workerType: this.workerType, from: children.length, to: n, ports: leaving.map((c) => c.spec.port) },
      'draining and stopping worker instances',
    );
    await Promise.all(leaving.map((c) => this.retire(c)));
  }

  private children(): SupervisedChild[] {
    return this.deps.supervisor
      .list()
      .filter((c) => c.spec.kind === this.workerType && c.state !== 'stopping' && c.state !== 'stopped');
  }

  private endpointOf(port: number): string {
    return normalizeEndpoint(`ws://${this.section.host}:${port}/ws`);
  }

  private async startInstance(): Promise<void> {
    const port = await freePort(this.section.host);
    this.deps.supervisor.start(this.deps.childSpec(this.workerType, port));
    // Registering before the process listens would only start the dial backoff (up to 10 s between tries).
    await waitUntil(() => healthy(this.section.host, port), START_TIMEOUT_MS, this.deps.signal);
    await this.deps.manager.registerWorker({
      endpoint: this.endpointOf(port),
      workerType: this.workerType,
      source: 'spawned',
    });
  }

  private async retire(child: SupervisedChild): Promise<void> {
    const { manager, supervisor } = this.deps;
    const endpoint = this.endpointOf(child.spec.port);
    const worker = manager.workerAt(endpoint);
    if (worker) {
      await manager.drainWorker(worker.workerId).catch(() => undefined);
      const drained = await waitUntil(
        async () => (manager.worker(worker.workerId)?.inFlight ?? 0) === 0,
        this.section.timeout + DRAIN_SLACK_MS,
        this.deps.signal,
      );
      if (!drained)
        this.deps.logger.warn(
          { workerId: worker.workerId, endpoint },
          'drained instance still has tasks after its timeout; stopping it (they are re-queued)',
        );
    }
    // SIGTERM: the worker drains on its own too, so even a task assigned in a race would finish.
    await supervisor.stopChild(child.id);
    await manager.removeEndpoint(endpoint);
  }
}

export interface AutoscalingHandle {
  autoscaler: Autoscaler;
  targets: SupervisedScalingTarget[];
  stop(): void;
}

/**
 * Starts the autoscaler over the given kinds. Every decision (holds included) becomes a manager `scaling`
 * event; the Autoscaler logs changes and refusals itself.
 */
export async function startAutoscaling(
  kinds: { workerType: string; section: WorkerSectionConfig }[],
  deps: SupervisedScalingDeps & { intervalMs: number; host?: HostResources },
): Promise<AutoscalingHandle> {
  const autoscaler = new Autoscaler({ logger: deps.logger, ...(deps.host ? { host: deps.host } : {}) });
  autoscaler.onDecision((decision) => deps.manager.publishEvent({ type: 'scaling', decision }));
  const targets: SupervisedScalingTarget[] = [];
  for (const { workerType, section } of kinds) {
    const target = new SupervisedScalingTarget(workerType, section, deps);
    const policy = scalingPolicyFromConfig(section.autoscale);
    policy.min = Math.max(1, policy.min);
    policy.max = Math.max(policy.min, policy.max);
    if (target.current() < policy.min) await target.scaleTo(policy.min, `starting at min ${policy.min}`);
    autoscaler.addTarget(target, policy);
    targets.push(target);
  }
  // Not Autoscaler.start: the queue depths behind each signal are async and must be read before a tick.
  let ticking = false;
  const timer = setInterval(
    () => {
      if (ticking) return;
      ticking = true;
      Promise.all(targets.map((t) => t.refresh()))
        .then(
          () =>
            void autoscaler.tick().catch((err: unknown) => deps.logger.error({ err }, 'scaling tick failed')),
        )
        .catch((err: unknown) => deps.logger.error({ err }, 'reading the scaling signal failed'))
        .finally(() => (ticking = false));
    },
    Math.max(100, deps.intervalMs),
  );
  timer.unref();
  return { autoscaler, targets, stop: () => clearInterval(timer) };
}

function childSeq(child: SupervisedChild): number {
  return Number(child.id.slice(child.id.lastIndexOf('-') + 1)) || 0;
}

async function healthy(host: string, port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${host}:${port}/health`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/** Polls `check` until true (→ true), the deadline (→ false) or the abort (→ false). */
async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  signal: AbortSignal,
  everyMs = 100,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!signal.aborted) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, everyMs);
      t.unref();
    });
  }
  return false;
}
