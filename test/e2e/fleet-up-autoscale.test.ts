/**
 * Auto-scaling and auto-recovery of `fleet up`, end to end: real processes, a YAML config with short
 * windows, load through the public API, observation through /api/workers, /api/scaling, /api/alerts and
 * the /api/events stream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { CLI, freePort, requireBuild, waitFor } from '../helpers/processes.js';

interface WorkerView {
  workerId: string;
  workerType: string;
  endpoint: string;
  status: string;
}
interface TaskView {
  id: string;
  state: string;
  workerId?: string;
  attempt: number;
  attempts: { error?: { code: string } }[];
  error?: { code: string };
}
interface Decision {
  workerType: string;
  action: string;
  current: number;
  desired: number;
  reason: string;
  inputs: { inFlight: number; queued: number; capacity: number; freeMemoryBytes: number };
}
interface AlertView {
  kind: string;
  key: string;
  level: string;
  message: string;
  workerType?: string;
  resolved?: boolean;
}

interface Fleet {
  proc: ChildProcess;
  base: string;
  echoPort: number;
  log: () => string;
  dir: string;
}

const running: Fleet[] = [];

async function fleetUp(yaml: (ports: { manager: number; echo: number }) => string): Promise<Fleet> {
  requireBuild();
  const dir = mkdtempSync(join(tmpdir(), 'fleet-autoscale-'));
  const ports = { manager: await freePort(), echo: await freePort() };
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, yaml(ports));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('FLEET_') || k.startsWith('WORKER_')) delete env[k];
  let out = '';
  const proc = spawn(process.execPath, [CLI, 'up', '--only', 'echo', '-c', file], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const fleet: Fleet = {
    proc,
    base: `http://127.0.0.1:${ports.manager}`,
    echoPort: ports.echo,
    log: () => out,
    dir,
  };
  running.push(fleet);
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`fleet up exited: ${out}`);
      return (await onlineEcho(fleet)).length >= 1;
    },
    30_000,
    'fleet up with an online echo worker',
    200,
  );
  return fleet;
}

async function get<T>(fleet: Fleet, path: string): Promise<T> {
  const res = await fetch(`${fleet.base}${path}`);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function post<T>(fleet: Fleet, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${fleet.base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function echoWorkers(fleet: Fleet): Promise<WorkerView[]> {
  const { workers } = await get<{ workers: WorkerView[] }>(fleet, '/api/workers').catch(() => ({
    workers: [] as WorkerView[],
  }));
  return workers.filter((w) => w.workerType === 'echo');
}

async function onlineEcho(fleet: Fleet): Promise<WorkerView[]> {
  return (await echoWorkers(fleet)).filter((w) => w.status === 'online' || w.status === 'busy');
}

function collectEvents(fleet: Fleet, types: string): { events: Record<string, unknown>[]; close(): void } {
  const events: Record<string, unknown>[] = [];
  const ws = new WebSocket(`${fleet.base.replace('http', 'ws')}/api/events?types=${types}`);
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as Record<string, unknown>));
  ws.on('error', () => undefined);
  return { events, close: () => ws.close() };
}

/** Resolves with the first dashboard snapshot (pushed once a second on /dashboard/live) that passes `check`. */
function dashboardSnapshot<T>(fleet: Fleet, check: (snapshot: T) => boolean, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${fleet.base.replace('http', 'ws')}/dashboard/live`);
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error('no dashboard snapshot passed the check in time'));
    }, timeoutMs);
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { snapshot?: T };
      if (msg.snapshot && check(msg.snapshot)) {
        clearTimeout(timer);
        ws.close();
        resolve(msg.snapshot);
      }
    });
    ws.on('error', () => undefined);
  });
}

afterEach(async () => {
  for (const fleet of running.splice(0)) {
    if (fleet.proc.exitCode === null) {
      const exited = new Promise((r) => fleet.proc.once('exit', r));
      fleet.proc.kill('SIGTERM');
      await exited;
    }
    rmSync(fleet.dir, { recursive: true, force: true });
  }
});

describe('fleet up auto-scaling', () => {
  it('scales a burst up to max, drains the queue, and back to min after the window with no task cut', async () => {
    const fleet = await fleetUp(
      (p) => `
manager:
  port: ${p.manager}
  log_level: warn
  supervisor:
    scale_interval: 250ms
echo:
  port: ${p.echo}
  max_concurrent_tasks: 4
  autoscale:
    enabled: true
    min: 1
    max: 3
    target_utilization: 0.7
    scale_up_step: 2
    scale_down_window: 3s
    cooldown: 1s
    instance_memory_mb: 1
`,
    );
    const stream = collectEvents(fleet, 'scaling');
    await waitFor(() => stream.events.some((e) => e.type === 'hello'), 5000, 'the event stream');

    const burst = 60;
    const ids: string[] = [];
    for (let i = 0; i < burst; i++) {
      const { task } = await post<{ task: TaskView }>(fleet, '/api/tasks', {
        capability: 'sleep',
        payload: { ms: 1500 },
      });
      ids.push(task.id);
    }
    const burstAt = Date.now();

    let peak = 0;
    await waitFor(
      async () => {
        peak = Math.max(peak, (await onlineEcho(fleet)).length);
        return peak === 3;
      },
      15_000,
      'three online echo instances',
      100,
    );
    const scaledUpInMs = Date.now() - burstAt;
    expect(scaledUpInMs).toBeLessThan(15_000);

    const finished: TaskView[] = [];
    for (const id of ids) {
      const { task } = await get<{ task: TaskView }>(fleet, `/api/tasks/${id}/wait?timeoutMs=60000`);
      finished.push(task);
    }
    expect(finished.map((t) => t.state)).toEqual(ids.map(() => 'succeeded'));
    // None cut: every task ran once, on one worker, with no lost or failed attempt before it.
    for (const t of finished) {
      expect(t.attempt).toBe(1);
      expect(t.attempts).toHaveLength(1);
      expect(t.attempts[0]?.error).toBeUndefined();
    }
    // The extra instances did take work.
    expect(new Set(finished.map((t) => t.workerId)).size).toBeGreaterThanOrEqual(2);

    await waitFor(
      async () => (await echoWorkers(fleet)).length === 1 && (await onlineEcho(fleet)).length === 1,
      20_000,
      'the echo type back to one instance',
      200,
    );
    // The dashboard lists the recent changes with their inputs.
    const board = await dashboardSnapshot<{ scaling: Decision[] }>(fleet, (s) =>
      s.scaling.some((d) => d.action === 'scale_down' && d.desired === 1),
    );
    expect(board.scaling.some((d) => d.action === 'scale_up' && d.inputs.queued > 0)).toBe(true);
    const [left] = await echoWorkers(fleet);
    expect(left?.endpoint).toBe(`ws://127.0.0.1:${fleet.echoPort}/ws`);

    const { decisions } = await get<{ decisions: Decision[] }>(fleet, '/api/scaling');
    const ups = decisions.filter((d) => d.workerType === 'echo' && d.action === 'scale_up');
    const downs = decisions.filter((d) => d.workerType === 'echo' && d.action === 'scale_down');
    expect(ups.at(-1)?.desired).toBe(3);
    expect(ups[0]?.inputs.queued).toBeGreaterThan(0);
    expect(ups[0]?.reason).toMatch(/utilization/);
    expect(downs.at(-1)?.desired).toBe(1);
    expect(downs.at(-1)?.reason).toMatch(/every recommendation in the last 3s/);

    // Every decision is on the event stream too, holds included.
    const streamed = stream.events.filter((e) => e.type === 'scaling') as { decision: Decision }[];
    stream.close();
    expect(streamed.some((e) => e.decision.action === 'scale_up' && e.decision.desired === 3)).toBe(true);
    expect(streamed.some((e) => e.decision.action === 'scale_down' && e.decision.desired === 1)).toBe(true);
    expect(streamed.some((e) => e.decision.action === 'hold')).toBe(true);

    // Stopped tasks are never lost: the queue is empty and nothing is left running.
    const status = await get<{ queue: { depth: number } }>(fleet, '/api/status');
    expect(status.queue.depth).toBe(0);
    expect(fleet.log()).not.toMatch(/"level":(50|60)/);
  }, 90_000);

  it('parks a worker that keeps crashing: status error and an alert, until it is restarted', async () => {
    const fleet = await fleetUp(
      (p) => `
manager:
  port: ${p.manager}
  log_level: error
  supervisor:
    max_crashes: 3
    crash_window: 60s
    max_backoff: 500ms
echo:
  port: ${p.echo}
`,
    );
    const stream = collectEvents(fleet, 'alert');
    await waitFor(() => stream.events.some((e) => e.type === 'hello'), 5000, 'the event stream');
    // Each attempt kills the worker process. One task may fell two workers before it is poison_task, so a
    // second crashing task brings the third crash, and the worker is parked with that task still queued.
    const { task: first } = await post<{ task: TaskView }>(fleet, '/api/tasks?wait=true', {
      capability: 'crash',
      payload: {},
      maxAttempts: 10,
    });
    expect(first.state).toBe('failed');
    expect(first.error?.code).toBe('poison_task');
    const { task } = await post<{ task: TaskView }>(fleet, '/api/tasks', {
      capability: 'crash',
      payload: {},
      maxAttempts: 10,
    });

    let parked: WorkerView | undefined;
    await waitFor(
      async () => {
        parked = (await echoWorkers(fleet)).find((w) => w.status === 'error');
        return parked !== undefined;
      },
      30_000,
      'the crashing echo worker in status error',
      200,
    );
    const alerts = await get<{ active: AlertView[] }>(fleet, '/api/alerts');
    const alert = alerts.active.find((a) => a.kind === 'worker_parked');
    expect(alert).toMatchObject({ level: 'error', workerType: 'echo' });
    expect(alert?.message).toMatch(/crashed 3 times within 60 s; parked/);
    expect(stream.events.some((e) => e.type === 'alert' && e.kind === 'worker_parked')).toBe(true);
    await dashboardSnapshot<{ alerts: { kind: string; severity: string }[] }>(fleet, (s) =>
      s.alerts.some((a) => a.kind === 'worker_parked' && a.severity === 'error'),
    );

    // It stays parked: no restart while nobody acts.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await echoWorkers(fleet)).find((w) => w.workerId === parked!.workerId)?.status).toBe('error');

    // An operator fixes the cause (here: cancels the poisonous task) and restarts it through the API.
    await post(fleet, `/api/tasks/${task.id}/cancel`, {});
    await post(fleet, `/api/workers/${parked!.workerId}/restart`, {});
    await waitFor(
      async () => (await onlineEcho(fleet)).length === 1,
      20_000,
      'the restarted echo worker online',
      200,
    );
    const after = await get<{ active: AlertView[] }>(fleet, '/api/alerts');
    expect(after.active.filter((a) => a.kind === 'worker_parked')).toEqual([]);
    expect(stream.events.some((e) => e.type === 'alert' && e.resolved === true)).toBe(true);
    stream.close();
    const { task: echoed } = await post<{ task: TaskView }>(fleet, '/api/tasks?wait=true', {
      capability: 'echo',
      payload: { ok: 1 },
    });
    expect(echoed.state).toBe('succeeded');
  }, 90_000);
});
