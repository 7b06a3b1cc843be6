/**
 * The scaling rule: Kubernetes' HorizontalPodAutoscaler algorithm applied to Fleet's own signal, as one
 * pure function so every branch is testable without processes or timers.
 *
 *   utilization = (in flight + queued) / capacity
 *   desired     = ceil(current × utilization / target)
 *
 * around which the HPA's guards sit, in this order:
 * - a tolerance band: while |utilization / target − 1| ≤ tolerance the recommendation is "stay", so a
 *   signal hovering near the target does not make the fleet flap;
 * - min..max: the recommendation is clamped to the configured bounds;
 * - scale-down stabilisation: the count only goes down to the highest recommendation seen within the
 *   window, so a short lull does not kill instances a returning burst needs (the HPA's
 *   `stabilizationWindowSeconds` for scale-down);
 * - scale-up happens at once but by at most `scaleUpStep` instances per decision (the HPA's scale-up
 *   policy), and then only if the host has the memory for the new instances;
 * - a cooldown after every change, so the effect of one change is measured before the next.
 *
 * The caller (the Autoscaler) keeps the recommendation history and the time of the last change; this
 * module only reads them.
 */
import type { AutoscaleSchema } from '../../config/schema.js';
import type { z } from 'zod';

export interface ScalingPolicy {
  min: number;
  max: number;
  /** Utilisation the rule steers towards, 0 < target ≤ 1. */
  targetUtilization: number;
  /** Half-width of the no-change band around the target, as a ratio (0.1 = ±10 %). */
  tolerance: number;
  /** Most instances added by one decision. */
  scaleUpStep: number;
  scaleDownWindowMs: number;
  cooldownMs: number;
  /** Memory one more instance needs; a scale-up that does not fit in free memory is cut or refused. */
  instanceMemoryBytes: number;
}

export interface ScalingSignal {
  inFlight: number;
  queued: number;
  /** Task slots of the ready instances (sum of their max concurrency). */
  capacity: number;
}

export interface Recommendation {
  at: number;
  replicas: number;
}

export interface ScalingRuleInput {
  now: number;
  current: number;
  signal: ScalingSignal;
  freeMemoryBytes: number;
  /** When the last change was decided; undefined when there was none. */
  lastScaleAt?: number;
  /** Earlier recommendations; entries older than the window are ignored. */
  history: readonly Recommendation[];
}

export const SCALING_ACTIONS = ['scale_up', 'scale_down', 'hold', 'refused'] as const;
export type ScalingAction = (typeof SCALING_ACTIONS)[number];

export interface ScalingVerdict {
  action: ScalingAction;
  /** The count to scale to; equals `current` for hold and refused. */
  desired: number;
  /** null when there is no ready capacity to divide by. */
  utilization: number | null;
  /** This evaluation's recommendation (after tolerance and min..max), to be appended to the history. */
  recommendation: number;
  /** The count the rule would want with no step, memory or cooldown limit (after stabilisation). */
  wanted: number;
  reason: string;
}

type AutoscaleConfig = z.output<typeof AutoscaleSchema>;

/** The config section (`<worker>.autoscale`, durations already in ms) → a policy. */
export function scalingPolicyFromConfig(config: AutoscaleConfig): ScalingPolicy {
  return {
    min: config.min,
    max: Math.max(config.max, config.min),
    targetUtilization: config.target_utilization,
    tolerance: config.tolerance,
    scaleUpStep: config.scale_up_step,
    scaleDownWindowMs: config.scale_down_window,
    cooldownMs: config.cooldown,
    instanceMemoryBytes: config.instance_memory_mb * 1024 * 1024,
  };
}

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const mib = (bytes: number) => `${Math.floor(bytes / (1024 * 1024))} MiB`;

function sanitize(signal: ScalingSignal): ScalingSignal {
  // A negative or NaN count from a confused source must not turn into a huge or negative replica count.
  const ok = (n: number) => (Number.isFinite(n) && n > 0 ? n : 0);
  return { inFlight: ok(signal.inFlight), queued: ok(signal.queued), capacity: ok(signal.capacity) };
}

/** What the signal alone asks for, before stabilisation, step, memory and cooldown. */
function recommend(
  policy: ScalingPolicy,
  current: number,
  signal: ScalingSignal,
): { replicas: number; utilization: number | null; why: string } {
  const demand = signal.inFlight + signal.queued;
  if (signal.capacity === 0) {
    if (current === 0) {
      const replicas = clamp(demand > 0 ? 1 : 0, policy.min, policy.max);
      return {
        replicas,
        utilization: null,
        why: demand > 0 ? `${demand} task(s) waiting and no instance` : 'idle',
      };
    }
    // Instances exist but none is ready (starting, or all unhealthy): there is nothing to measure, and
    // the supervisor, not the scaler, is the one to repair them.
    return {
      replicas: clamp(current, policy.min, policy.max),
      utilization: null,
      why: 'no ready capacity to measure',
    };
  }
  const utilization = demand / signal.capacity;
  const ratio = utilization / policy.targetUtilization;
  const measured = `utilization ${pct(utilization)} vs target ${pct(policy.targetUtilization)}`;
  // The epsilon keeps a band edge (0.55 / 0.5 = 1.1000000000000001) inside the band it was meant to be in.
  if (Math.abs(ratio - 1) <= policy.tolerance + 1e-9) {
    return {
      replicas: clamp(current, policy.min, policy.max),
      utilization,
      why: `${measured}, within tolerance`,
    };
  }
  const raw = Math.ceil(current * ratio - 1e-9);
  return {
    replicas: clamp(raw, policy.min, policy.max),
    utilization,
    why: `${measured} → ceil(${current} × ${ratio.toFixed(3)}) = ${raw}`,
  };
}

export function decideScale(policy: ScalingPolicy, input: ScalingRuleInput): ScalingVerdict {
  const current = Math.max(0, Math.floor(input.current));
  const signal = sanitize(input.signal);
  const rec = recommend(policy, current, signal);
  const base = { utilization: rec.utilization, recommendation: rec.replicas };

  // Bounds first: an instance count outside min..max (config changed, or instances died) is corrected
  // without waiting for a window or a cooldown.
  if (current < policy.min) {
    return scaleUp(
      policy,
      input,
      current,
      policy.min,
      Number.POSITIVE_INFINITY,
      base,
      `below min ${policy.min}`,
    );
  }
  if (current > policy.max) {
    return {
      ...base,
      action: 'scale_down',
      desired: policy.max,
      wanted: policy.max,
      reason: `above max ${policy.max}`,
    };
  }

  const windowStart = input.now - policy.scaleDownWindowMs;
  const inWindow = input.history
    .filter((r) => r.at > windowStart && r.at <= input.now)
    .map((r) => r.replicas);
  const stabilized = Math.max(rec.replicas, ...inWindow);
  const wanted = rec.replicas > current ? rec.replicas : Math.min(current, stabilized);

  const cooling = input.lastScaleAt !== undefined && input.now - input.lastScaleAt < policy.cooldownMs;
  if (wanted === current) {
    const held =
      rec.replicas < current
        ? `${rec.why}; scale-down to ${rec.replicas} held by the ${policy.scaleDownWindowMs / 1000}s window (highest recent recommendation ${stabilized})`
        : rec.why;
    return { ...base, action: 'hold', desired: current, wanted, reason: held };
  }
  if (cooling) {
    const left = policy.cooldownMs - (input.now - input.lastScaleAt!);
    return {
      ...base,
      action: 'hold',
      desired: current,
      wanted,
      reason: `${rec.why}; wants ${wanted} but cooling down (${Math.ceil(left / 1000)}s left)`,
    };
  }
  if (wanted > current) return scaleUp(policy, input, current, wanted, policy.scaleUpStep, base, rec.why);
  return {
    ...base,
    action: 'scale_down',
    desired: wanted,
    wanted,
    reason: `${rec.why}; every recommendation in the last ${policy.scaleDownWindowMs / 1000}s was ≤ ${wanted}`,
  };
}

function scaleUp(
  policy: ScalingPolicy,
  input: ScalingRuleInput,
  current: number,
  wanted: number,
  step: number,
  base: Pick<ScalingVerdict, 'utilization' | 'recommendation'>,
  why: string,
): ScalingVerdict {
  const stepped = Math.min(wanted, current + step);
  const free = Number.isFinite(input.freeMemoryBytes) ? Math.max(0, input.freeMemoryBytes) : 0;
  const fits =
    policy.instanceMemoryBytes > 0 ? Math.floor(free / policy.instanceMemoryBytes) : Number.MAX_SAFE_INTEGER;
  const desired = Math.min(stepped, current + fits);
  const memoryNote = `${mib(free)} free, ${mib(policy.instanceMemoryBytes)} per instance`;
  if (desired <= current) {
    return {
      ...base,
      action: 'refused',
      desired: current,
      wanted,
      reason: `${why}; wants ${wanted} but the host cannot hold another instance (${memoryNote})`,
    };
  }
  const limits: string[] = [];
  if (stepped < wanted) limits.push(`step ${step}`);
  if (desired < stepped) limits.push(`memory: ${memoryNote}`);
  const limited = limits.length ? ` (wants ${wanted}, limited by ${limits.join(' and ')})` : '';
  return { ...base, action: 'scale_up', desired, wanted, reason: `${why}; scale up to ${desired}${limited}` };
}
