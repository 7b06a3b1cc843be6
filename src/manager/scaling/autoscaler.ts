/**
 * The autoscaler: on each tick, for every worker type it manages, read the signal and the host's free
 * memory, ask the rule (scaling-rule.ts) what to do, publish that decision, and carry it out through the
 * type's `ScalingTarget`. It owns the state the HPA keeps between evaluations: the recommendation
 * history of the scale-down window and the time of the last change (the cooldown).
 *
 * What "scale to n" means is not its business: the target is the process supervisor of `fleet up`
 * (spawn on free ports, drain before stop) or anything else that can change an instance count. A change
 * still in progress (a drain can take a task's whole timeout) makes the type hold, not pile up changes.
 *
 * Every evaluation is published, holds included, with its inputs: an operator asking "why didn't it
 * scale?" needs the holds and refusals as much as the changes.
 */
import type { Logger } from 'pino';
import { SystemHostResources, type HostResources } from './host-resources.js';
import {
  decideScale,
  type Recommendation,
  type ScalingAction,
  type ScalingPolicy,
  type ScalingSignal,
} from './scaling-rule.js';

/** One worker type whose instance count the autoscaler may change. */
export interface ScalingTarget {
  workerType: string;
  /** Instances running now (ready or not), including ones still starting. */
  current(): number;
  signal(): ScalingSignal;
  /** Bring the instance count to n; resolves when done (instances started, or drained and stopped). */
  scaleTo(n: number, reason: string): Promise<void>;
}

export interface ScalingDecisionInputs extends ScalingSignal {
  freeMemoryBytes: number;
  policy: ScalingPolicy;
  /** What the signal asked for this time (after tolerance and min..max). */
  recommendation: number;
  /** What the rule wanted before step, memory and cooldown limits. */
  wanted: number;
  lastScaleAt: number | null;
}

export interface ScalingDecision {
  /** Epoch ms of the evaluation. */
  at: number;
  workerType: string;
  current: number;
  desired: number;
  utilization: number | null;
  inputs: ScalingDecisionInputs;
  action: ScalingAction;
  reason: string;
}

export type ScalingDecisionListener = (decision: ScalingDecision) => void;

export interface AutoscalerOptions {
  host?: HostResources;
  /** Epoch ms; injectable so tests drive windows and cooldowns without waiting. */
  now?: () => number;
  logger?: Logger;
  /** How many non-hold decisions `recentDecisions()` keeps. Default 200. */
  historyLimit?: number;
}

interface Managed {
  target: ScalingTarget;
  policy: ScalingPolicy;
  history: Recommendation[];
  lastScaleAt: number | undefined;
  busy: boolean;
  last: ScalingDecision | undefined;
}

export class Autoscaler {
  private readonly managed = new Map<string, Managed>();
  private readonly listeners = new Set<ScalingDecisionListener>();
  private readonly recent: ScalingDecision[] = [];
  private readonly host: HostResources;
  private readonly now: () => number;
  private readonly logger: Logger | undefined;
  private readonly historyLimit: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: AutoscalerOptions = {}) {
    this.host = options.host ?? new SystemHostResources();
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
    this.historyLimit = options.historyLimit ?? 200;
  }

  /**
   * Manage a worker type. The window starts now with the current count as its first recommendation:
   * a scaler that has just started has seen no load yet, and must not read that as a reason to scale down.
   */
  addTarget(target: ScalingTarget, policy: ScalingPolicy): void {
    if (this.managed.has(target.workerType)) {
      throw new Error(`autoscaler: worker type ${target.workerType} is already managed`);
    }
    if (policy.min > policy.max) {
      throw new Error(`autoscaler: ${target.workerType}: min ${policy.min} is above max ${policy.max}`);
    }
    this.managed.set(target.workerType, {
      target,
      policy,
      history: [{ at: this.now(), replicas: target.current() }],
      lastScaleAt: undefined,
      busy: false,
      last: undefined,
    });
  }

  removeTarget(workerType: string): boolean {
    return this.managed.delete(workerType);
  }

  workerTypes(): string[] {
    return [...this.managed.keys()];
  }

  /** Subscribe to every decision; returns the unsubscribe function. */
  onDecision(listener: ScalingDecisionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The latest decision of each type (holds included): what the dashboard shows as "why". */
  lastDecisions(): ScalingDecision[] {
    return [...this.managed.values()].flatMap((m) => (m.last ? [m.last] : []));
  }

  /** Recent changes and refusals, oldest first (holds are too many to keep). */
  recentDecisions(limit = this.historyLimit): ScalingDecision[] {
    return this.recent.slice(-limit);
  }

  /**
   * One evaluation of every type. Resolves when the changes it decided are done (or failed), which is
   * what tests wait on; the interval loop does not wait, so one slow drain never delays another type.
   */
  async tick(): Promise<ScalingDecision[]> {
    const decisions: ScalingDecision[] = [];
    const changes: Promise<void>[] = [];
    for (const m of [...this.managed.values()]) {
      const decision = this.evaluate(m);
      decisions.push(decision);
      this.publish(m, decision);
      if (decision.action === 'scale_up' || decision.action === 'scale_down')
        changes.push(this.apply(m, decision));
    }
    await Promise.all(changes);
    return decisions;
  }

  start(intervalMs: number): void {
    if (!(intervalMs > 0)) throw new Error(`autoscaler: interval must be positive, got ${intervalMs}`);
    this.stop();
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private evaluate(m: Managed): ScalingDecision {
    const at = this.now();
    const { target, policy } = m;
    let current = 0;
    let signal: ScalingSignal = { inFlight: 0, queued: 0, capacity: 0 };
    let freeMemoryBytes = 0;
    let readError: string | undefined;
    try {
      current = target.current();
      signal = target.signal();
      freeMemoryBytes = this.host.freeMemoryBytes();
    } catch (err) {
      readError = err instanceof Error ? err.message : String(err);
    }
    const baseInputs = { ...signal, freeMemoryBytes, policy, lastScaleAt: m.lastScaleAt ?? null };
    const hold = (reason: string): ScalingDecision => ({
      at,
      workerType: target.workerType,
      current,
      desired: current,
      utilization: signal.capacity > 0 ? (signal.inFlight + signal.queued) / signal.capacity : null,
      inputs: { ...baseInputs, recommendation: current, wanted: current },
      action: 'hold',
      reason,
    });
    if (readError !== undefined) return hold(`could not read the signal: ${readError}`);
    if (m.busy) return hold('the previous change is still in progress');

    const verdict = decideScale(policy, {
      now: at,
      current,
      signal,
      freeMemoryBytes,
      lastScaleAt: m.lastScaleAt,
      history: m.history,
    });
    m.history.push({ at, replicas: verdict.recommendation });
    const windowStart = at - policy.scaleDownWindowMs;
    // Keep the newest entry even when the window is 0, so the history is never empty after a tick.
    while (m.history.length > 1 && m.history[0]!.at <= windowStart) m.history.shift();
    return {
      at,
      workerType: target.workerType,
      current,
      desired: verdict.desired,
      utilization: verdict.utilization,
      inputs: { ...baseInputs, recommendation: verdict.recommendation, wanted: verdict.wanted },
      action: verdict.action,
      reason: verdict.reason,
    };
  }

  private publish(m: Managed, decision: ScalingDecision): void {
    m.last = decision;
    if (decision.action !== 'hold') {
      this.recent.push(decision);
      if (this.recent.length > this.historyLimit)
        this.recent.splice(0, this.recent.length - this.historyLimit);
    }
    const log = { scaling: decision };
    if (decision.action === 'refused')
      this.logger?.warn(log, `scaling refused for ${decision.workerType}: ${decision.reason}`);
    else if (decision.action === 'hold') this.logger?.debug(log, `scaling hold for ${decision.workerType}`);
    else
      this.logger?.info(
        log,
        `scaling ${decision.workerType} ${decision.current} → ${decision.desired}: ${decision.reason}`,
      );
    for (const listener of this.listeners) {
      try {
        listener(decision);
      } catch (err) {
        // A broken subscriber (a closed dashboard socket) must not stop the scaler or the others.
        this.logger?.error({ err }, 'scaling decision listener threw');
      }
    }
  }

  private async apply(m: Managed, decision: ScalingDecision): Promise<void> {
    m.busy = true;
    // The cooldown counts from the decision, as the HPA's does from its last scale time.
    m.lastScaleAt = decision.at;
    try {
      await m.target.scaleTo(decision.desired, decision.reason);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.logger?.error(
        { err, workerType: decision.workerType },
        `scaling ${decision.workerType} failed: ${message}`,
      );
      this.publish(m, {
        ...decision,
        at: this.now(),
        desired: decision.current,
        action: 'refused',
        reason: `scaling to ${decision.desired} failed: ${message}`,
      });
    } finally {
      m.busy = false;
    }
  }
}
