import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../../src/manager/clock.js';
import type { Dispatcher } from '../../../../src/manager/dispatch/dispatcher.js';
import { afterDeepCheck, liveness, readiness } from '../../../../src/manager/health/health-state.js';
import { HealthMonitor } from '../../../../src/manager/health/health-monitor.js';
import { WorkerRegistry } from '../../../../src/manager/registry/worker-registry.js';

const policy = { heartbeatIntervalMs: 1000, missedHeartbeats: 3, unhealthyThreshold: 3 };

describe('health state machine', () => {
  it('liveness: dead only after the missed beats', () => {
    expect(liveness(0, 3000, policy)).toBe('alive');
    expect(liveness(0, 3001, policy)).toBe('dead');
  });

  it('readiness: degraded, then unhealthy at the threshold, cleared by one success', () => {
    let s = { consecutiveFailures: 0, lastSuccess: undefined as number | undefined };
    s = afterDeepCheck(s, false, 1);
    expect(readiness(s, policy)).toBe('degraded');
    s = afterDeepCheck(afterDeepCheck(s, false, 2), false, 3);
    expect(readiness(s, policy)).toBe('unhealthy');
    s = afterDeepCheck(s, true, 4);
    expect(readiness(s, policy)).toBe('ready');
    expect(s.lastSuccess).toBe(4);
  });
});

describe('HealthMonitor with a fake clock', () => {
  function setup(probeOk: () => boolean) {
    const clock = new FakeClock(0);
    const registry = new WorkerRegistry(() => clock.now());
    const lost: string[] = [];
    const drained: string[] = [];
    const restarted: string[] = [];
    const dispatcher = {
      isConnected: () => true,
      workerLost: async (id: string) => {
        lost.push(id);
        registry.get(id)!.baseStatus = 'offline';
      },
      drain: async (id: string) => void drained.push(id),
    } as unknown as Dispatcher;
    const monitor = new HealthMonitor({
      registry,
      dispatcher,
      clock,
      logger: pino({ level: 'silent' }),
      policy,
      intervalMs: 30_000,
      timeoutMs: 5_000,
      restart: async (id) => {
        restarted.push(id);
        return true;
      },
      probe: async () =>
        probeOk() ? { status: 200, body: { status: 'ok' } } : { status: 503, body: { status: 'not_ready' } },
    });
    return { clock, registry, monitor, lost, drained, restarted };
  }

  it('declares a silent worker dead on the fast path, without waiting for the 30 s check', async () => {
    const { clock, registry, monitor, lost } = setup(() => true);
    await registry.registerWorker({
      workerId: 'w1',
      workerType: 'echo',
      endpoint: 'ws://127.0.0.1:1/ws',
      port: 1,
      capabilities: ['echo'],
      maxConcurrency: 2,
      version: 't',
    });
    await monitor.startMonitoring();
    clock.advance(2500);
    registry.get('w1')!.lastHeartbeat = clock.now(); // a beat arrives
    clock.advance(2900);
    expect(lost).toEqual([]);
    // Checked every half period: the beat is 3.5 s old at the next check, past 3 missed beats.
    clock.advance(600);
    // Judged after one poll phase, so what the socket had buffered is read first.
    expect(lost).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(lost).toEqual(['w1']);
    monitor.stopMonitoring();
  });

  it('drains, marks error and restarts after three failed deep checks, every 30 s', async () => {
    let ok = true;
    const { clock, registry, monitor, drained, restarted } = setup(() => ok);
    await registry.registerWorker({
      workerId: 'w1',
      workerType: 'echo',
      endpoint: 'ws://127.0.0.1:1/ws',
      port: 1,
      capabilities: ['echo'],
      maxConcurrency: 2,
      version: 't',
    });
    const first = await monitor.performHealthCheck('w1');
    expect(first.ok).toBe(true);
    expect(registry.get('w1')!.lastHealthCheck).toBe(0);
    ok = false;
    for (let i = 0; i < 2; i++) await monitor.performHealthCheck('w1');
    expect(drained).toEqual([]);
    await monitor.performHealthCheck('w1');
    expect(drained).toEqual(['w1']);
    expect(registry.get('w1')!.baseStatus).toBe('error');
    expect(restarted).toEqual(['w1']);
    void clock;
  });
});
