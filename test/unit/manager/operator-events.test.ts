import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/manager/clock.js';
import {
  DashboardAggregator,
  SCALING_ROWS,
  type DashboardSource,
} from '../../../src/manager/dashboard/aggregator.js';
import type { ManagerEvent } from '../../../src/manager/manager.js';
import { OperatorEventLog, type AlertEvent } from '../../../src/manager/operator-events.js';
import type { ScalingDecision } from '../../../src/manager/scaling/autoscaler.js';
import type { ScalingAction } from '../../../src/manager/scaling/scaling-rule.js';

function decision(workerType: string, action: ScalingAction, at: number): ScalingDecision {
  return {
    at,
    workerType,
    current: 1,
    desired: action === 'scale_up' ? 3 : action === 'scale_down' ? 0 : 1,
    utilization: 0.5,
    inputs: {
      inFlight: 1,
      queued: 0,
      capacity: 2,
      freeMemoryBytes: 1 << 30,
      policy: {
        min: 1,
        max: 3,
        targetUtilization: 0.7,
        tolerance: 0.1,
        scaleUpStep: 2,
        scaleDownWindowMs: 3000,
        cooldownMs: 1000,
        instanceMemoryBytes: 1 << 20,
      },
      recommendation: 1,
      wanted: 1,
      lastScaleAt: null,
    },
    action,
    reason: `${action} at ${at}`,
  };
}

function alert(key: string, resolved = false): AlertEvent {
  return {
    type: 'alert',
    at: 1,
    level: 'error',
    kind: 'worker_parked',
    key,
    message: `parked ${key}`,
    workerType: 'echo',
    ...(resolved ? { resolved } : {}),
  };
}

describe('OperatorEventLog', () => {
  it('keeps changes and refusals in order, holds only as the latest per type, within its bound', () => {
    const log = new OperatorEventLog({ decisions: 3 });
    log.record({ type: 'scaling', decision: decision('echo', 'scale_up', 1) });
    for (let i = 2; i < 50; i++) log.record({ type: 'scaling', decision: decision('echo', 'hold', i) });
    log.record({ type: 'scaling', decision: decision('echo', 'refused', 50) });
    log.record({ type: 'scaling', decision: decision('python-sandbox', 'scale_down', 51) });
    log.record({ type: 'scaling', decision: decision('echo', 'scale_down', 52) });
    expect(log.recentDecisions().map((d) => d.at)).toEqual([50, 51, 52]);
    expect(log.recentDecisions(1).map((d) => d.at)).toEqual([52]);
    expect(log.latestDecisions().map((d) => [d.workerType, d.at])).toEqual([
      ['echo', 52],
      ['python-sandbox', 51],
    ]);
  });

  it('an alert stays active until an event with its key resolves it', () => {
    const log = new OperatorEventLog({ alerts: 2 });
    log.record(alert('a'));
    log.record(alert('b'));
    log.record(alert('a', true));
    expect(log.activeAlerts().map((a) => a.key)).toEqual(['b']);
    expect(log.recentAlerts().map((a) => [a.key, a.resolved ?? false])).toEqual([
      ['b', false],
      ['a', true],
    ]);
  });
});

describe('dashboard aggregator with published events', () => {
  function source(): DashboardSource & { emit(e: ManagerEvent): void } {
    const listeners = new Set<(e: ManagerEvent) => void>();
    return {
      id: 'm',
      subscribe: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      getWorkerStatus: async () => [],
      capabilitiesByType: () => new Map([['echo', ['echo']]]),
      queueDepth: async () => 0,
      emit: (e) => listeners.forEach((l) => l(e)),
    };
  }

  it('shows a published alert until it is resolved, and the latest scaling changes newest first', async () => {
    const src = source();
    const agg = new DashboardAggregator(src, { clock: new FakeClock(0) });
    agg.start();
    src.emit(alert('worker_parked:ws://127.0.0.1:1/ws'));
    src.emit({ type: 'scaling', decision: decision('echo', 'hold', 1) });
    for (let i = 0; i < SCALING_ROWS + 2; i++)
      src.emit({ type: 'scaling', decision: decision('echo', i % 2 ? 'scale_down' : 'scale_up', 10 + i) });

    const snap = (await agg.tick())!;
    expect(snap.alerts).toEqual([
      expect.objectContaining({
        kind: 'worker_parked',
        severity: 'error',
        message: 'parked worker_parked:ws://127.0.0.1:1/ws',
      }),
    ]);
    expect(snap.scaling).toHaveLength(SCALING_ROWS);
    expect(snap.scaling[0]?.at).toBe(10 + SCALING_ROWS + 1);
    expect(snap.scaling.some((d) => d.action === 'hold')).toBe(false);

    src.emit(alert('worker_parked:ws://127.0.0.1:1/ws', true));
    expect((await agg.tick())!.alerts).toEqual([]);
    agg.stop();
  });
});
