/**
 * Issue 14 point 4: a task recorded once also runs once. Executions are counted on the worker side (every
 * handler run ends in exactly one fleet_worker_tasks_total outcome; refusals are `rejected`), not from the
 * manager's records.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { executionLog, type ExecutionLog } from '../../helpers/executions.js';
import { startManagerProcess, type ManagerProcess } from '../../helpers/manager-process.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';

/** Handler runs on a worker: every outcome but `rejected` (a refusal never ran the handler). */
async function executions(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    const m = /^fleet_worker_tasks_total\{([^}]*)\} (\d+)/.exec(line);
    if (m && !m[1]!.includes('outcome="rejected"')) n += Number(m[2]);
  }
  return n;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

describe('run once (issue 14 point 4)', () => {
  const procs: WorkerProcess[] = [];
  let m: ManagerProcess | undefined;
  let log: ExecutionLog | undefined;
  afterEach(() => {
    if (m && m.proc.exitCode === null) {
      m.proc.kill('SIGCONT');
      m.proc.kill('SIGKILL');
    }
    m = undefined;
    for (const p of procs.splice(0)) {
      p.proc.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    log?.cleanup();
    log = undefined;
  });
  /** Echo workers that log every handler run, per task, to one file. */
  const countingWorker = () => spawnWorker('echo', { env: { FLEET_ECHO_EXECUTION_LOG: log!.file } });

  it('a 4 s SIGSTOP of the manager: every task runs exactly once on the workers', async () => {
    log = executionLog();
    const a = await countingWorker();
    const b = await countingWorker();
    procs.push(a, b);
    m = await startManagerProcess([a.endpoint, b.endpoint], 5);
    const n = 200;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${m.url}/api/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ capability: 'sleep', payload: { ms: 100 + (i % 5) * 100 } }),
      });
      ids.push(((await res.json()) as { task: { id: string } }).task.id);
    }
    await new Promise((r) => setTimeout(r, 800));
    // Paused well past the heartbeat window (1 s), well within the workers' ping timeout (15 s): results
    // finish and wait in the manager's sockets while it cannot read them.
    m.proc.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 4000));
    m.proc.kill('SIGCONT');
    await waitFor(
      async () => {
        const r = await fetch(`${m!.url}/api/tasks?state=succeeded,failed,timed_out,cancelled&limit=10000`);
        return ((await r.json()) as { tasks: unknown[] }).tasks.length === n;
      },
      60_000,
      'every task final',
      200,
    );
    const r = await fetch(`${m.url}/api/tasks?limit=10000`);
    const tasks = ((await r.json()) as { tasks: { state: string; attempts: unknown[] }[] }).tasks;
    expect(tasks.filter((t) => t.state === 'succeeded')).toHaveLength(n);
    expect((await executions(a.port)) + (await executions(b.port))).toBe(n);
    expect(log.duplicates()).toEqual([]);
    expect(log.total()).toBe(n);
    expect(tasks.every((t) => t.attempts.length === 1)).toBe(true);
    expect(await metric(m.url, 'fleet_task_reexecutions_total')).toBe(0);
  }, 120_000);

  it('kill -9 of a worker (at least once): its tasks run again elsewhere, at most its slots are repeated, no dispatch twice', async () => {
    log = executionLog();
    const a = await countingWorker();
    const b = await countingWorker();
    procs.push(a, b);
    m = await startManagerProcess([a.endpoint, b.endpoint], 5);
    const n = 12;
    for (let i = 0; i < n; i++) {
      await fetch(`${m.url}/api/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ capability: 'sleep', payload: { ms: 1500 } }),
      });
    }
    await waitFor(() => log!.total() === n, 10_000, 'every task running', 20);
    a.kill('SIGKILL');
    await waitFor(
      async () => {
        const r = await fetch(`${m!.url}/api/tasks?state=succeeded,failed,timed_out,cancelled&limit=100`);
        return ((await r.json()) as { tasks: unknown[] }).tasks.length === n;
      },
      30_000,
      'every task final',
      100,
    );
    const r = await fetch(`${m.url}/api/tasks?limit=100`);
    const tasks = ((await r.json()) as { tasks: { id: string; state: string; attempts: unknown[] }[] }).tasks;
    expect(tasks.map((t) => t.state)).toEqual(Array(n).fill('succeeded'));
    expect(log.attemptDuplicates()).toEqual([]);
    const extra = log.total() - n;
    // The documented bound: a dead worker repeats at most what it was running (8 slots, the echo default).
    expect(extra).toBeGreaterThan(0);
    expect(extra).toBeLessThanOrEqual(8);
    for (const t of tasks) expect(log.counts().get(t.id) ?? 0).toBeLessThanOrEqual(t.attempts.length);
  }, 60_000);

  it('a worker SIGSTOPed past the liveness window and back within the hold: its tasks are taken over, not re-run', async () => {
    log = executionLog();
    const a = await countingWorker();
    const b = await countingWorker();
    procs.push(a, b);
    // Liveness window 1 s (200 ms x 5): the manager judges the stopped worker lost and holds its tasks
    // for one more window; the worker, continued within it, reports them and they are adopted.
    m = await startManagerProcess([a.endpoint, b.endpoint], 5);
    const n = 8;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${m.url}/api/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ capability: 'sleep', payload: { ms: 3000 } }),
      });
      ids.push(((await res.json()) as { task: { id: string } }).task.id);
    }
    await waitFor(() => log!.total() === n, 10_000, 'every task running', 20);
    a.proc.kill('SIGSTOP');
    await waitFor(
      async () => {
        const r = await fetch(`${m!.url}/api/workers`);
        const { workers } = (await r.json()) as { workers: { endpoint: string; status: string }[] };
        return workers.some((w) => w.endpoint === a.endpoint && w.status === 'offline');
      },
      5_000,
      'the stopped worker judged lost',
      20,
    );
    await new Promise((r) => setTimeout(r, 300));
    a.proc.kill('SIGCONT');
    await waitFor(
      async () => {
        const r = await fetch(`${m!.url}/api/tasks?state=succeeded,failed,timed_out,cancelled&limit=100`);
        return ((await r.json()) as { tasks: unknown[] }).tasks.length === n;
      },
      30_000,
      'every task final',
      100,
    );
    const r = await fetch(`${m.url}/api/tasks?limit=100`);
    const tasks = ((await r.json()) as { tasks: { state: string; attempts: unknown[] }[] }).tasks;
    expect(tasks.map((t) => t.state)).toEqual(Array(n).fill('succeeded'));
    expect(tasks.filter((t) => t.attempts.length !== 1)).toEqual([]);
    expect(log.duplicates()).toEqual([]);
    expect(log.total()).toBe(n);
    expect(await metric(m.url, 'fleet_reconciled_tasks_total{outcome="adopted"}')).toBeGreaterThan(0);
    expect(await metric(m.url, 'fleet_task_reexecutions_total')).toBe(0);
  }, 60_000);
});
