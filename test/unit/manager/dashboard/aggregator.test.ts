import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../../src/manager/clock.js';
import {
  DashboardAggregator,
  describeInfo,
  percentile,
  type DashboardSource,
  type Snapshot,
} from '../../../../src/manager/dashboard/aggregator.js';
import type { ManagerEvent } from '../../../../src/manager/manager.js';
import type { TaskRecord, TaskState } from '../../../../src/manager/queue/task.js';
import type { WorkerStatusView } from '../../../../src/manager/registry/worker-registry.js';

function view(id: string, type: string, over: Partial<WorkerStatusView> = {}): WorkerStatusView {
  return {
    workerId: id,
    workerType: type,
    endpoint: `ws://127.0.0.1:1/${id}`,
    port: 1,
    status: 'online',
    capabilities: [type],
    currentLoad: 0,
    lastHeartbeat: new Date(0),
    maxConcurrency: 2,
    inFlight: 0,
    draining: false,
    version: '1',
    info: {},
    metrics: {
      workerId: id,
      workerType: type,
      taskCount: 0,
      averageResponseTime: 0,
      successRate: 1,
      errorCount: 0,
      cpuUsage: 0,
      memoryUsage: 1024,
      diskUsage: 0,
      connectionCount: 1,
      uptime: 1,
      lastHealthCheck: null,
    },
    ...over,
  };
}

class FakeSource implements DashboardSource {
  readonly id = 'manager-test';
  workers: WorkerStatusView[] = [];
  depths = new Map<string, number>();
  private listeners = new Set<(e: ManagerEvent) => void>();
  queueDepth = async (capability?: string) =>
    capability === undefined
      ? [...this.depths.values()].reduce((a, b) => a + b, 0)
      : (this.depths.get(capability) ?? 0);
  subscribe(l: (e: ManagerEvent) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  async getWorkerStatus() {
    return this.workers;
  }
  capabilitiesByType() {
    return new Map([
      ['echo', ['echo']],
      ['browser', ['browser']],
    ]);
  }
  emit(e: ManagerEvent) {
    for (const l of this.listeners) l(e);
  }
  worker(kind: 'registered' | 'updated', w: WorkerStatusView) {
    this.emit({ type: 'worker', kind, worker: w });
  }
}

let seq = 0;
function task(state: TaskState, over: Partial<TaskRecord> = {}): TaskRecord {
  seq += 1;
  return {
    id: `t${seq}`,
    capability: 'echo',
    payload: {},
    priority: 0,
    timeoutMs: 1000,
    maxAttempts: 1,
    state,
    attempt: 1,
    createdAt: 0,
    updatedAt: 0,
    notBefore: 0,
    attempts: [],
    ...over,
  };
}

function finished(source: FakeSource, state: TaskState, durationMs: number, over: Partial<TaskRecord> = {}) {
  source.emit({
    type: 'task',
    event: {
      kind: 'finished',
      task: task(state, { startedAt: 1000, finishedAt: 1000 + durationMs, ...over }),
    },
  });
}

function setup(options: Partial<ConstructorParameters<typeof DashboardAggregator>[1]> = {}) {
  const clock = new FakeClock(1_000_000);
  const source = new FakeSource();
  const agg = new DashboardAggregator(source, { clock, ...options });
  agg.start();
  return { clock, source, agg };
}

describe('percentile', () => {
  it('takes the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 95)).toBe(95);
    expect(percentile([7], 95)).toBe(7);
    expect(percentile([], 50)).toBeNull();
  });
});

describe('describeInfo', () => {
  it('reads python isolation and browser pool state, and flags the worrying ones', () => {
    expect(describeInfo({ isolation: { level: 'nsjail', secure: true } })).toEqual({
      detail: 'isolation: nsjail',
      warn: false,
    });
    expect(describeInfo({ isolation: { level: 'none', secure: false } })?.warn).toBe(true);
    expect(describeInfo({ browser: { pool: { ready: 2, size: 3, launching: 1 } } })).toEqual({
      detail: 'pool: 2/3 ready, 1 launching',
      warn: false,
    });
    expect(describeInfo({ browser: { pool: null } })?.warn).toBe(true);
    expect(describeInfo({ pid: 1 })).toBeUndefined();
  });
});

describe('DashboardAggregator', () => {
  it('closes one series point per tick with completed, failed and p50/p95 per type', async () => {
    const { source, agg } = setup();
    source.workers = [view('e1', 'echo')];
    source.worker('registered', source.workers[0]!);
    for (let i = 1; i <= 100; i++) finished(source, 'succeeded', i, { workerId: 'e1' });
    finished(source, 'failed', 5, { workerId: 'e1' });
    finished(source, 'timed_out', 5, { workerId: 'e1' });
    finished(source, 'cancelled', 5, { workerId: 'e1' });
    const snap = (await agg.tick())!;
    expect(snap.point.types.echo).toMatchObject({ completed: 100, failed: 2 });
    // The two failures (5 ms each) are duration samples too: 102 samples, the 51st is 49.
    expect(snap.point.types.echo?.p50).toBe(49);
    expect(snap.point.types.echo?.p95).toBeGreaterThanOrEqual(94);
    expect(snap.totals).toEqual({ completed: 100, failed: 2, cancelled: 1 });
    const next = (await agg.tick())!;
    expect(next.point.types).toEqual({});
    expect(agg.series()).toHaveLength(2);
  });

  it('attributes a task to its worker type, else to the type offering its capability', async () => {
    const { source, agg } = setup();
    source.worker('registered', view('b1', 'browser'));
    finished(source, 'succeeded', 1, { workerId: 'b1', capability: 'echo' });
    finished(source, 'succeeded', 1, { capability: 'browser' });
    finished(source, 'succeeded', 1, { capability: 'unknown-cap' });
    const snap = (await agg.tick())!;
    expect(snap.point.types.browser?.completed).toBe(2);
    expect(snap.point.types['unknown-cap']?.completed).toBe(1);
  });

  it('stays bounded at high throughput: sample reservoir, history ring, recent-task LRU', async () => {
    const { source, agg } = setup({ samplesPerTick: 200, historyPoints: 5, recentTasks: 300 });
    for (let s = 0; s < 8; s++) {
      for (let i = 0; i < 5000; i++) finished(source, 'succeeded', i % 100);
      const snap = (await agg.tick())!;
      expect(snap.point.types.echo?.completed).toBe(5000);
      const p50 = snap.point.types.echo?.p50 ?? -1;
      expect(p50).toBeGreaterThan(35);
      expect(p50).toBeLessThan(65);
    }
    expect(agg.series()).toHaveLength(5);
    expect(agg.tasks({ limit: 500 })).toHaveLength(300);
  });

  it('folds events in after the turn that brought them, in order, and before any read', async () => {
    const { source, agg } = setup();
    const pending = () => (agg as unknown as { pending: unknown[] }).pending.length;
    // What the manager's answer to a client is: a microtask the same turn queued before the events came.
    let pendingAtAnswer: number | undefined;
    queueMicrotask(() => (pendingAtAnswer = pending()));
    const t = task('running');
    source.emit({ type: 'task', event: { kind: 'running', task: t } });
    await Promise.resolve();
    await Promise.resolve();
    expect(pendingAtAnswer).toBe(1);
    // Then it was folded in on its own, without a read.
    expect(pending()).toBe(0);
    expect(agg.tasks({ state: 'active' }).map((r) => r.id)).toEqual([t.id]);
    // A read in the same turn as the events sees all of them, in order.
    source.emit({ type: 'task', event: { kind: 'finished', task: { ...t, state: 'succeeded' } } });
    source.emit({ type: 'task', event: { kind: 'running', task: task('running') } });
    expect(pending()).toBe(2);
    expect(agg.tasks().map((r) => r.state)).toEqual(['running', 'succeeded']);
  });

  it('lists running tasks first, then recent ones newest first, filtered by state and type', () => {
    const { source, agg } = setup();
    const long = task('running', { startedAt: 10 });
    source.emit({ type: 'task', event: { kind: 'running', task: long } });
    for (let i = 0; i < 50; i++) finished(source, i % 5 === 0 ? 'failed' : 'succeeded', 1);
    const all = agg.tasks({ limit: 10 });
    expect(all[0]?.id).toBe(long.id);
    expect(all[1]?.id).toBe(`t${seq}`);
    expect(agg.tasks({ state: 'failed' }).every((t) => t.state === 'failed')).toBe(true);
    expect(agg.tasks({ state: 'failed' })).toHaveLength(10);
    expect(agg.tasks({ state: 'active' }).map((t) => t.id)).toEqual([long.id]);
    expect(agg.tasks({ type: 'browser' })).toEqual([]);
    source.emit({
      type: 'task',
      event: { kind: 'finished', task: { ...long, state: 'succeeded', finishedAt: 20 } },
    });
    expect(agg.tasks({ state: 'active' })).toEqual([]);
  });

  it('builds task rows when read, from the latest event of each task, as a dashboard that was open would see them', () => {
    const { source, agg } = setup();
    source.worker('registered', view('b1', 'browser'));
    const t = task('queued', { id: 'lazy-1', createdAt: 100, updatedAt: 100, attempt: 0, maxAttempts: 3 });
    source.emit({ type: 'task', event: { kind: 'submitted', task: t } });
    expect(agg.tasks()).toEqual([
      {
        id: 'lazy-1',
        capability: 'echo',
        type: 'echo',
        state: 'queued',
        attempt: 0,
        maxAttempts: 3,
        createdAt: 100,
        updatedAt: 100,
      },
    ]);
    const attempt = { attempt: 1, workerId: 'b1', leaseToken: 'l', startedAt: 110 };
    const running: TaskRecord = {
      ...t,
      state: 'running',
      workerId: 'b1',
      attempt: 1,
      attempts: [attempt],
      updatedAt: 110,
    };
    source.emit({ type: 'task', event: { kind: 'running', task: running } });
    const long = `${'x'.repeat(300)}`;
    source.emit({
      type: 'task',
      event: {
        kind: 'finished',
        task: {
          ...running,
          state: 'failed',
          finishedAt: 150,
          updatedAt: 150,
          attempts: [{ ...attempt, finishedAt: 150, outcome: 'failed' }],
          error: { code: 'handler_error', message: long, retryable: false },
        },
      },
    });
    const rows = agg.tasks();
    // No key for what the task does not have (an undefined value would differ on the wire from no key).
    expect(rows).toHaveLength(1);
    expect(Object.keys(rows[0]!)).toEqual([
      'id',
      'capability',
      'type',
      'state',
      'workerId',
      'attempt',
      'maxAttempts',
      'createdAt',
      'startedAt',
      'finishedAt',
      'durationMs',
      'error',
      'updatedAt',
    ]);
    expect(rows[0]).toEqual({
      id: 'lazy-1',
      capability: 'echo',
      type: 'browser',
      state: 'failed',
      workerId: 'b1',
      attempt: 1,
      maxAttempts: 3,
      createdAt: 100,
      startedAt: 110,
      finishedAt: 150,
      durationMs: 40,
      error: `handler_error: ${long.slice(0, 200 - 'handler_error: '.length)}…`,
      updatedAt: 150,
    });
    // A row read earlier is the reader's: later events do not change it.
    const before = agg.tasks();
    source.emit({
      type: 'task',
      event: { kind: 'retrying', task: { ...t, state: 'queued', updatedAt: 160 } },
    });
    expect(before[0]?.state).toBe('failed');
    expect(agg.tasks()[0]).toMatchObject({ state: 'queued', updatedAt: 160 });
  });

  it('alerts when a type that had workers has none online, and only then', async () => {
    const { source, agg } = setup();
    source.workers = [view('e1', 'echo')];
    expect((await agg.tick())!.alerts).toEqual([]);
    source.workers = [view('e1', 'echo', { status: 'offline' })];
    source.depths.set('echo', 3);
    const alerts = (await agg.tick())!.alerts;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'no_online_worker', severity: 'error' });
    expect(alerts[0]?.message).toContain('no online echo worker');
    expect(alerts[0]?.message).toContain('3 tasks waiting');
    source.workers = [view('e1', 'echo')];
    expect((await agg.tick())!.alerts).toEqual([]);
  });

  it('alerts on tasks waiting for a type that never had a worker', async () => {
    const { source, agg } = setup();
    source.depths.set('browser', 2);
    const alerts = (await agg.tick())!.alerts;
    expect(alerts.map((a) => a.key)).toEqual(['no_online_worker:browser']);
  });

  it('flags a worker that went offline 3 times within 60 s, and forgets it after', async () => {
    // Ticks driven by hand only: the interval would otherwise fire during clock.advance.
    const { source, agg, clock } = setup({ tickMs: 3_600_000 });
    const on = view('e1', 'echo');
    const off = view('e1', 'echo', { status: 'offline' });
    source.workers = [on, view('e2', 'echo')];
    source.worker('registered', on);
    for (let i = 0; i < 3; i++) {
      source.worker('updated', off);
      clock.advance(5000);
      source.worker('updated', on);
    }
    const snap = (await agg.tick())!;
    const flap = snap.alerts.find((a) => a.kind === 'flapping');
    expect(flap?.message).toContain('e1');
    expect(flap?.message).toContain('3 times');
    clock.advance(61_000);
    expect((await agg.tick())!.alerts.filter((a) => a.kind === 'flapping')).toEqual([]);
  });

  it('keeps counting flaps across a restart that brings a new worker id on the same endpoint', async () => {
    const { source, agg } = setup();
    for (let i = 0; i < 3; i++) {
      const id = `e-${i}`;
      const endpoint = 'ws://127.0.0.1:9/ws';
      source.worker('registered', view(id, 'echo', { endpoint }));
      source.worker('updated', view(id, 'echo', { endpoint, status: 'offline' }));
    }
    source.workers = [view('e-3', 'echo')];
    expect((await agg.tick())!.alerts.map((a) => a.key)).toContain('flapping:ws://127.0.0.1:9/ws');
  });

  it('warns when the queue grows for 5 s while workers have free slots, not while they are full', async () => {
    const { source, agg } = setup();
    source.workers = [view('e1', 'echo', { inFlight: 0, maxConcurrency: 2 })];
    let last: Snapshot | undefined;
    for (let i = 0; i <= 5; i++) {
      source.depths.set('echo', i * 10);
      last = (await agg.tick())!;
    }
    const alert = last!.alerts.find((a) => a.kind === 'queue_growing_idle');
    expect(alert?.message).toContain('echo queue grew to 50');
    expect(alert?.since).toBe(last!.t);

    const full = setup();
    full.source.workers = [view('e1', 'echo', { inFlight: 2, maxConcurrency: 2, status: 'busy' })];
    for (let i = 0; i <= 5; i++) {
      full.source.depths.set('echo', i * 10);
      last = (await full.agg.tick())!;
    }
    expect(last!.alerts).toEqual([]);
  });

  it('keeps a bounded progress log per task', () => {
    const { source, agg } = setup({ progressEntries: 3, progressTasks: 2 });
    for (let i = 0; i < 5; i++)
      source.emit({
        type: 'progress',
        progress: { taskId: 'a', attempt: 1, workerId: 'e1', percent: i * 20 },
      });
    source.emit({
      type: 'progress',
      progress: { taskId: 'b', attempt: 1, workerId: 'e1', message: 'x'.repeat(2000) },
    });
    source.emit({
      type: 'progress',
      progress: { taskId: 'c', attempt: 1, workerId: 'e1', log: { stream: 'stdout', data: 'hi' } },
    });
    expect(agg.progressLog('a')).toEqual([]);
    expect(agg.progressLog('b')[0]?.message?.length).toBeLessThanOrEqual(501);
    expect(agg.progressLog('c')[0]?.log).toBe('[stdout] hi');
  });

  it('pushes a snapshot to listeners on every clock tick and stops cleanly', async () => {
    const { source, agg, clock } = setup({ tickMs: 1000 });
    source.workers = [view('e1', 'echo')];
    const got: number[] = [];
    agg.onSnapshot((s) => got.push(s.t));
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    expect(got).toHaveLength(2);
    agg.stop();
    clock.advance(3000);
    await new Promise((r) => setImmediate(r));
    expect(got).toHaveLength(2);
  });
});
