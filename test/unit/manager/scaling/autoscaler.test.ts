import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import {
  Autoscaler,
  type ScalingDecision,
  type ScalingTarget,
} from '../../../../src/manager/scaling/autoscaler.js';
import {
  SystemHostResources,
  cgroupHeadroom,
  parseMemAvailable,
} from '../../../../src/manager/scaling/host-resources.js';
import type { ScalingPolicy, ScalingSignal } from '../../../../src/manager/scaling/scaling-rule.js';

const MiB = 1024 * 1024;
const policy: ScalingPolicy = {
  min: 1,
  max: 6,
  targetUtilization: 0.7,
  tolerance: 0.1,
  scaleUpStep: 2,
  scaleDownWindowMs: 60_000,
  cooldownMs: 10_000,
  instanceMemoryBytes: 512 * MiB,
};

/** A worker type whose instances each have `slots` task slots; scaleTo records the calls. */
class FakeTarget implements ScalingTarget {
  instances: number;
  demand = 0;
  calls: { n: number; reason: string }[] = [];
  gate: Promise<void> | undefined;
  failWith: Error | undefined;

  constructor(
    readonly workerType: string,
    start: number,
    private readonly slots = 5,
  ) {
    this.instances = start;
  }

  current(): number {
    return this.instances;
  }

  signal(): ScalingSignal {
    const capacity = this.instances * this.slots;
    const inFlight = Math.min(this.demand, capacity);
    return { inFlight, queued: this.demand - inFlight, capacity };
  }

  async scaleTo(n: number, reason: string): Promise<void> {
    this.calls.push({ n, reason });
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    this.instances = n;
  }
}

function setup(options: { free?: number; start?: number } = {}) {
  let now = 1_700_000_000_000;
  let free = options.free ?? 16 * 1024 * MiB;
  const clock = {
    advance: (ms: number) => (now += ms),
    setFree: (bytes: number) => (free = bytes),
  };
  const scaler = new Autoscaler({ now: () => now, host: { freeMemoryBytes: () => free } });
  const target = new FakeTarget('python-sandbox', options.start ?? 1);
  scaler.addTarget(target, policy);
  const events: ScalingDecision[] = [];
  scaler.onDecision((d) => events.push(d));
  return { scaler, target, clock, events };
}

describe('Autoscaler', () => {
  it('scales up at once on a burst, by at most the step per decision, and never past max', async () => {
    const { scaler, target, clock, events } = setup();
    target.demand = 100; // 20× the capacity of one instance

    const [first] = await scaler.tick();
    expect(first).toMatchObject({ action: 'scale_up', current: 1, desired: 3, workerType: 'python-sandbox' });
    expect(target.calls.map((c) => c.n)).toEqual([3]);
    expect(target.instances).toBe(3);

    // Inside the cooldown nothing moves, however hot the signal.
    clock.advance(5_000);
    expect((await scaler.tick())[0]).toMatchObject({ action: 'hold', desired: 3 });
    expect(target.calls).toHaveLength(1);

    clock.advance(5_000);
    expect((await scaler.tick())[0]).toMatchObject({ action: 'scale_up', current: 3, desired: 5 });
    clock.advance(10_000);
    expect((await scaler.tick())[0]).toMatchObject({ action: 'scale_up', current: 5, desired: 6 });
    clock.advance(10_000);
    expect((await scaler.tick())[0]).toMatchObject({ action: 'hold', current: 6, desired: 6 });
    expect(target.calls.map((c) => c.n)).toEqual([3, 5, 6]);
    expect(Math.max(...events.map((e) => e.desired))).toBe(6);
  });

  it('scales down only after the stabilisation window has passed without a higher recommendation', async () => {
    const { scaler, target, clock } = setup({ start: 4 });
    target.demand = 14; // 14 / 20 = 70 %: on target
    expect((await scaler.tick())[0]!.action).toBe('hold');

    target.demand = 0;
    for (let t = 0; t < 55_000; t += 15_000) {
      clock.advance(15_000);
      const [d] = await scaler.tick();
      if (t + 15_000 < 60_000) {
        expect(d, `at +${t + 15_000}ms`).toMatchObject({ action: 'hold', current: 4 });
        expect(d!.reason).toContain('held by the 60s window');
      }
    }
    // +60 s: the on-target recommendation of 4 has aged out of the window.
    const last = target.calls.at(-1);
    expect(last?.n).toBe(1);
    expect(target.instances).toBe(1);
  });

  it('a burst inside the window resets it: the lull must last a whole window again', async () => {
    const { scaler, target, clock } = setup({ start: 3 });
    target.demand = 0;
    clock.advance(30_000);
    await scaler.tick();
    target.demand = 11; // 11 / 15 ≈ 73 %: on target, recommends 3
    clock.advance(20_000);
    await scaler.tick();
    target.demand = 0;
    clock.advance(30_000); // 80 s after start, 30 s after the busy moment
    expect((await scaler.tick())[0]).toMatchObject({ action: 'hold', current: 3 });
    clock.advance(30_000);
    expect((await scaler.tick())[0]).toMatchObject({ action: 'scale_down', desired: 1 });
  });

  it('refuses with a reason when the host lacks memory, and publishes the inputs', async () => {
    const { scaler, target, clock, events } = setup({ free: 200 * MiB });
    const log: unknown[] = [];
    const logged = new Autoscaler({
      now: () => 0,
      host: { freeMemoryBytes: () => 200 * MiB },
      logger: pino({ level: 'warn' }, { write: (line: string) => void log.push(JSON.parse(line)) }),
    });
    const other = new FakeTarget('browser-worker', 1, 4);
    other.demand = 40;
    logged.addTarget(other, policy);
    await logged.tick();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ level: 40, scaling: { action: 'refused', workerType: 'browser-worker' } });

    target.demand = 50;
    const [d] = await scaler.tick();
    expect(d).toMatchObject({ action: 'refused', current: 1, desired: 1 });
    expect(d!.reason).toMatch(/cannot hold another instance \(200 MiB free, 512 MiB per instance\)/);
    expect(d!.inputs).toMatchObject({
      inFlight: 5,
      queued: 45,
      capacity: 5,
      freeMemoryBytes: 200 * MiB,
      wanted: 6,
    });
    expect(target.calls).toHaveLength(0);
    expect(scaler.recentDecisions().map((e) => e.action)).toEqual(['refused']);

    // Memory freed: the next tick scales (a refusal is not a change, so no cooldown applies).
    clock.setFree(4 * 1024 * MiB);
    clock.advance(1_000);
    expect((await scaler.tick())[0]).toMatchObject({ action: 'scale_up', desired: 3 });
    expect(events.map((e) => e.action)).toEqual(['refused', 'scale_up']);
  });

  it('holds inside the tolerance band', async () => {
    const { scaler, target, clock } = setup({ start: 4 });
    // 20 slots, target 70 % ± 10 % of it: 63 %..77 %, so 13..15 busy tasks hold.
    for (const demand of [13, 14, 15, 14, 13]) {
      target.demand = demand;
      clock.advance(15_000);
      expect((await scaler.tick())[0], `demand ${demand}`).toMatchObject({ action: 'hold', desired: 4 });
    }
    expect(target.calls).toHaveLength(0);
    target.demand = 16; // 80 %: outside the band
    clock.advance(15_000);
    expect((await scaler.tick())[0]).toMatchObject({ action: 'scale_up', desired: 5 });
  });

  it('does not stack changes while one is in progress, and reports a failed change as refused', async () => {
    const { scaler, target, clock } = setup();
    target.demand = 100;
    let release!: () => void;
    target.gate = new Promise<void>((r) => (release = r));
    const pending = scaler.tick();
    clock.advance(20_000);
    expect((await scaler.tick())[0]).toMatchObject({
      action: 'hold',
      reason: 'the previous change is still in progress',
    });
    release();
    await pending;
    expect(target.calls).toHaveLength(1);

    target.gate = undefined;
    target.failWith = new Error('no free port');
    clock.advance(20_000);
    const decisions: ScalingDecision[] = [];
    scaler.onDecision((d) => decisions.push(d));
    await scaler.tick();
    expect(decisions.map((d) => d.action)).toEqual(['scale_up', 'refused']);
    expect(decisions[1]!.reason).toContain('failed: no free port');
  });

  it('keeps going when a listener throws or a signal cannot be read', async () => {
    const { scaler, target } = setup();
    scaler.onDecision(() => {
      throw new Error('listener broke');
    });
    const broken = new FakeTarget('figma-mcp', 1);
    broken.signal = () => {
      throw new Error('registry unavailable');
    };
    scaler.addTarget(broken, policy);
    target.demand = 100;
    const decisions = await scaler.tick();
    expect(decisions.map((d) => [d.workerType, d.action])).toEqual([
      ['python-sandbox', 'scale_up'],
      ['figma-mcp', 'hold'],
    ]);
    expect(decisions[1]!.reason).toContain('registry unavailable');
  });

  it('rejects a duplicate type and min above max; start/stop use an unref-ed interval', () => {
    const { scaler, target } = setup();
    expect(() => scaler.addTarget(target, policy)).toThrow(/already managed/);
    expect(() => scaler.addTarget(new FakeTarget('x', 1), { ...policy, min: 5, max: 2 })).toThrow(
      /min 5 is above max 2/,
    );
    expect(() => scaler.start(0)).toThrow(/interval/);
    vi.useFakeTimers();
    try {
      const tick = vi.spyOn(scaler, 'tick');
      scaler.start(1_000);
      vi.advanceTimersByTime(3_500);
      expect(tick).toHaveBeenCalledTimes(3);
      scaler.stop();
      vi.advanceTimersByTime(5_000);
      expect(tick).toHaveBeenCalledTimes(3);
    } finally {
      vi.useRealTimers();
    }
    expect(scaler.removeTarget('python-sandbox')).toBe(true);
    expect(scaler.workerTypes()).toEqual([]);
  });
});

describe('SystemHostResources', () => {
  const meminfo = 'MemTotal:       16000000 kB\nMemFree:          100000 kB\nMemAvailable:    8000000 kB\n';

  it('reads MemAvailable, capped by the cgroup v2 headroom', () => {
    expect(parseMemAvailable(meminfo)).toBe(8_000_000 * 1024);
    expect(parseMemAvailable('MemTotal: 1 kB\n')).toBeUndefined();
    expect(cgroupHeadroom('max\n', '123\n')).toBeUndefined();
    expect(cgroupHeadroom('1000\n', '300\n')).toBe(700);
    expect(cgroupHeadroom('1000', '3000')).toBe(0);

    const files: Record<string, string> = {
      '/proc/meminfo': meminfo,
      '/sys/fs/cgroup/memory.max': String(2 * 1024 * MiB),
      '/sys/fs/cgroup/memory.current': String(1536 * MiB),
    };
    const host = new SystemHostResources(
      (p) => files[p],
      () => 1,
    );
    expect(host.freeMemoryBytes()).toBe(512 * MiB);
    expect(
      new SystemHostResources(
        () => undefined,
        () => 42,
      ).freeMemoryBytes(),
    ).toBe(42);
  });

  it('answers a positive number on this machine', () => {
    expect(new SystemHostResources().freeMemoryBytes()).toBeGreaterThan(0);
  });
});
