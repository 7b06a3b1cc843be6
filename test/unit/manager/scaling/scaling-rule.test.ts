import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AutoscaleSchema } from '../../../../src/config/schema.js';
import {
  decideScale,
  scalingPolicyFromConfig,
  type ScalingPolicy,
  type ScalingRuleInput,
} from '../../../../src/manager/scaling/scaling-rule.js';

const MiB = 1024 * 1024;
const policy: ScalingPolicy = {
  min: 1,
  max: 10,
  targetUtilization: 0.5,
  tolerance: 0.1,
  scaleUpStep: 2,
  scaleDownWindowMs: 60_000,
  cooldownMs: 10_000,
  instanceMemoryBytes: 512 * MiB,
};
const plenty = 64 * 1024 * MiB;

function input(
  over: Partial<ScalingRuleInput> & Pick<ScalingRuleInput, 'current' | 'signal'>,
): ScalingRuleInput {
  return { now: 1_000_000, freeMemoryBytes: plenty, history: [], ...over };
}

describe('decideScale', () => {
  it('follows the HPA formula: desired = ceil(current × utilization / target)', () => {
    // 2 instances × 5 slots, 8 busy + 1 queued → 90 % vs 50 % → ceil(2 × 1.8) = 4.
    const v = decideScale(policy, input({ current: 2, signal: { inFlight: 8, queued: 1, capacity: 10 } }));
    expect(v.utilization).toBeCloseTo(0.9);
    expect(v.recommendation).toBe(4);
    expect(v).toMatchObject({ action: 'scale_up', desired: 4, wanted: 4 });
    expect(v.reason).toContain('ceil(2 × 1.800) = 4');
  });

  it('bounds a scale-up by the step and by max', () => {
    const burst = { inFlight: 5, queued: 100, capacity: 5 };
    const stepped = decideScale(policy, input({ current: 1, signal: burst }));
    expect(stepped).toMatchObject({ action: 'scale_up', desired: 3, wanted: 10 });
    expect(stepped.reason).toContain('limited by step 2');

    const nearMax = decideScale(
      policy,
      input({ current: 9, signal: { inFlight: 45, queued: 500, capacity: 45 } }),
    );
    expect(nearMax).toMatchObject({ action: 'scale_up', desired: 10, wanted: 10 });
  });

  it('holds inside the tolerance band and moves just outside it', () => {
    // target 0.5, tolerance 0.1 → ratios in [0.9, 1.1] hold: utilisation 0.45..0.55.
    for (const inFlight of [45, 50, 55]) {
      const v = decideScale(policy, input({ current: 4, signal: { inFlight, queued: 0, capacity: 100 } }));
      expect(v.action, `utilisation ${inFlight}%`).toBe('hold');
      expect(v.recommendation).toBe(4);
      expect(v.reason).toContain('within tolerance');
    }
    const above = decideScale(
      policy,
      input({ current: 4, signal: { inFlight: 57, queued: 0, capacity: 100 } }),
    );
    expect(above).toMatchObject({ action: 'scale_up', desired: 5 });
  });

  it('does not scale down while a higher recommendation is inside the window', () => {
    const idle = { inFlight: 0, queued: 0, capacity: 20 };
    const now = 1_000_000;
    const held = decideScale(
      policy,
      input({ now, current: 4, signal: idle, history: [{ at: now - 30_000, replicas: 4 }] }),
    );
    expect(held).toMatchObject({ action: 'hold', desired: 4, recommendation: 1 });
    expect(held.reason).toContain('held by the 60s window');

    const old = decideScale(
      policy,
      input({ now, current: 4, signal: idle, history: [{ at: now - 60_000, replicas: 4 }] }),
    );
    expect(old).toMatchObject({ action: 'scale_down', desired: 1 });
  });

  it('scales down to the highest recommendation in the window, not below it', () => {
    const now = 1_000_000;
    const history = [
      { at: now - 50_000, replicas: 3 },
      { at: now - 20_000, replicas: 2 },
    ];
    const v = decideScale(
      policy,
      input({ now, current: 5, signal: { inFlight: 0, queued: 0, capacity: 25 }, history }),
    );
    expect(v).toMatchObject({ action: 'scale_down', desired: 3 });
  });

  it('holds during the cooldown and says how long is left', () => {
    const now = 1_000_000;
    const v = decideScale(
      policy,
      input({
        now,
        current: 2,
        lastScaleAt: now - 4_000,
        signal: { inFlight: 10, queued: 10, capacity: 10 },
      }),
    );
    expect(v).toMatchObject({ action: 'hold', desired: 2, wanted: 8 });
    expect(v.reason).toContain('cooling down (6s left)');
    const after = decideScale(
      policy,
      input({
        now,
        current: 2,
        lastScaleAt: now - 10_000,
        signal: { inFlight: 10, queued: 10, capacity: 10 },
      }),
    );
    expect(after).toMatchObject({ action: 'scale_up', desired: 4 });
  });

  it('refuses a scale-up the host has no memory for, and cuts one that only partly fits', () => {
    const burst = { inFlight: 10, queued: 50, capacity: 10 };
    const refused = decideScale(policy, input({ current: 2, signal: burst, freeMemoryBytes: 300 * MiB }));
    expect(refused).toMatchObject({ action: 'refused', desired: 2, wanted: 10 });
    expect(refused.reason).toContain('cannot hold another instance (300 MiB free, 512 MiB per instance)');

    const cut = decideScale(policy, input({ current: 2, signal: burst, freeMemoryBytes: 600 * MiB }));
    expect(cut).toMatchObject({ action: 'scale_up', desired: 3 });
    expect(cut.reason).toContain('limited by step 2 and memory');
  });

  it('restores min and max at once, whatever the window or cooldown', () => {
    const now = 1_000_000;
    const idle = { inFlight: 0, queued: 0, capacity: 5 };
    const low = decideScale(
      { ...policy, min: 3 },
      input({ now, current: 1, signal: idle, lastScaleAt: now - 1 }),
    );
    expect(low).toMatchObject({ action: 'scale_up', desired: 3 });
    expect(low.reason).toContain('below min 3');
    const high = decideScale(
      { ...policy, max: 4 },
      input({ now, current: 6, signal: idle, lastScaleAt: now - 1 }),
    );
    expect(high).toMatchObject({ action: 'scale_down', desired: 4 });
  });

  it('starts one instance from zero when work waits, and holds with no ready capacity', () => {
    const zero = { ...policy, min: 0 };
    expect(
      decideScale(zero, input({ current: 0, signal: { inFlight: 0, queued: 3, capacity: 0 } })),
    ).toMatchObject({
      action: 'scale_up',
      desired: 1,
      utilization: null,
    });
    expect(
      decideScale(zero, input({ current: 0, signal: { inFlight: 0, queued: 0, capacity: 0 } })),
    ).toMatchObject({
      action: 'hold',
      desired: 0,
    });
    const starting = decideScale(
      policy,
      input({ current: 2, signal: { inFlight: 0, queued: 9, capacity: 0 } }),
    );
    expect(starting).toMatchObject({ action: 'hold', desired: 2 });
    expect(starting.reason).toContain('no ready capacity');
  });

  it('treats garbage signal values as zero instead of producing absurd counts', () => {
    const v = decideScale(
      policy,
      input({
        current: 2,
        signal: { inFlight: Number.NaN, queued: -50, capacity: Number.POSITIVE_INFINITY },
      }),
    );
    expect(v.action).toBe('hold');
    expect(v.desired).toBe(2);
  });

  it('always stays within min..max and never exceeds the step (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 0, max: 15 }),
        fc.nat(200),
        fc.nat(200),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 4 }),
        (min, span, current, inFlight, queued, capacity, step) => {
          const p = { ...policy, min, max: min + span, scaleUpStep: step };
          const v = decideScale(p, input({ current, signal: { inFlight, queued, capacity } }));
          const inBounds = current >= p.min && current <= p.max;
          if (inBounds) {
            expect(v.desired).toBeGreaterThanOrEqual(p.min);
            expect(v.desired).toBeLessThanOrEqual(p.max);
            expect(v.desired - current).toBeLessThanOrEqual(step);
          }
          if (v.action === 'hold' || v.action === 'refused') expect(v.desired).toBe(current);
          if (v.action === 'scale_up') expect(v.desired).toBeGreaterThan(current);
          if (v.action === 'scale_down') expect(v.desired).toBeLessThan(current);
        },
      ),
    );
  });
});

describe('scalingPolicyFromConfig', () => {
  it('turns the config section (durations in ms, memory in MB) into a policy', () => {
    const cfg = AutoscaleSchema.parse({
      min: 2,
      max: 6,
      scale_down_window: '2m',
      cooldown: 15,
      instance_memory_mb: 256,
    });
    expect(scalingPolicyFromConfig(cfg)).toEqual({
      min: 2,
      max: 6,
      targetUtilization: 0.7,
      tolerance: 0.1,
      scaleUpStep: 2,
      scaleDownWindowMs: 120_000,
      cooldownMs: 15_000,
      instanceMemoryBytes: 256 * MiB,
    });
  });
});
