import { afterEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../src/protocol/errors.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';
import { startManager, type TestManager } from '../../helpers/manager.js';

describe('manager + echo workers over real WebSockets', () => {
  let m: TestManager | undefined;
  const workers: WorkerProcess[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) w.kill('SIGKILL');
    await m?.stop();
    m = undefined;
  });

  async function fleet(n: number, env: Record<string, string> = {}) {
    m = await startManager();
    for (let i = 0; i < n; i++) workers.push(await spawnWorker('echo', { env }));
    for (const w of workers) await m.manager.registerWorker({ endpoint: w.endpoint });
    await waitFor(
      () =>
        m!.manager.localWorkers().filter((w) => w.status === 'online' || w.status === 'busy').length === n,
      15_000,
      'workers online',
    );
    return m;
  }

  it('routes by capability and spreads load across workers', async () => {
    const { client, manager } = await fleet(2);
    const tasks = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.submit('sleep', { ms: 50 }, { id: `route-${i}` })),
    );
    const done = await Promise.all(tasks.map((t) => client.wait(t.id, 20_000)));
    expect(done.every((t) => t.state === 'succeeded')).toBe(true);
    const perWorker = new Map<string, number>();
    for (const t of done) perWorker.set(t.workerId!, (perWorker.get(t.workerId!) ?? 0) + 1);
    expect(perWorker.size).toBe(2);
    for (const n of perWorker.values()) expect(n).toBeGreaterThanOrEqual(5);
    const echoed = await client.execute('echo', { hello: 'fleet' });
    expect(echoed.output).toEqual({ hello: 'fleet' });
    const statuses = await manager.getWorkerStatus();
    expect(statuses.map((s) => s.workerType)).toEqual(['echo', 'echo']);
    expect(statuses[0]!.metrics.taskCount + statuses[1]!.metrics.taskCount).toBe(21);
    const metrics = await (await fetch(`${m!.url}/metrics`)).text();
    const counts = [
      ...metrics.matchAll(/^fleet_worker_finished_tasks_total\{[^}]*worker_type="echo"[^}]*\} (\d+)$/gm),
    ].map((x) => Number(x[1]));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(21);
    expect(metrics).toMatch(/^fleet_queue_depth\{capability="sleep"\} 0$/m);
    expect(metrics).toMatch(/^fleet_worker_type_utilization\{worker_type="echo"\} 0$/m);
    expect(metrics).toMatch(/^fleet_worker_up\{[^}]*status="online"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^fleet_task_wait_seconds_count\{capability="sleep"\} 20$/m);
    expect(metrics).toMatch(/^fleet_dispatch_latency_seconds_count 21$/m);
  });

  it('never exceeds per-worker concurrency under a burst, and loses nothing', async () => {
    const { client, manager } = await fleet(2, { WORKER_ECHO_PORT: '0' });
    let maxSeen = 0;
    const unsubscribe = manager.subscribe((event) => {
      if (event.type !== 'worker') return;
      maxSeen = Math.max(maxSeen, event.worker.inFlight);
      expect(event.worker.inFlight).toBeLessThanOrEqual(event.worker.maxConcurrency);
    });
    const ids = Array.from({ length: 60 }, (_, i) => `burst-${i}`);
    await Promise.all(ids.map((id) => client.submit('sleep', { ms: 400 }, { id })));
    const done = await Promise.all(ids.map((id) => client.wait(id, 60_000)));
    unsubscribe();
    expect(done.filter((t) => t.state === 'succeeded')).toHaveLength(60);
    expect(maxSeen).toBe(8);
    // The workers' own view: no task was refused as busy, so the manager's accounting matched the slots.
    expect(done.every((t) => t.attempt === 1)).toBe(true);
  });

  it('answers unknown capabilities and invalid tasks with typed errors', async () => {
    const { client } = await fleet(1);
    await expect(client.submit('no-such-capability', {})).rejects.toMatchObject({
      code: 'unknown_capability',
    });
    await expect(client.submit('', {})).rejects.toMatchObject({ code: 'invalid_task' });
    const res = await fetch(`${m!.url}/api/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: FleetError }).error.code).toBe('invalid_task');
    const failed = await client.execute('fail', { code: 'python_error', message: 'nope' });
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('python_error');
    expect(failed.attempt).toBe(1);
  });

  it('retries a retryable application error up to maxAttempts', async () => {
    const { client } = await fleet(1);
    const t = await client.execute(
      'fail',
      { code: 'busy', message: 'try later', retryable: true },
      { maxAttempts: 3 },
    );
    expect(t.state).toBe('failed');
    expect(t.attempts).toHaveLength(3);
    expect(t.error?.code).toBe('busy');
  });

  it("streams a task's events over /api/events", async () => {
    const { client } = await fleet(1);
    const seen: string[] = [];
    const close = await client.events((e) => void (e.type === 'task' && seen.push(e.kind as string)), {
      taskId: 'streamed-1',
      types: ['task'],
    });
    await client.execute('echo', { x: 1 }, { id: 'streamed-1' });
    await waitFor(() => seen.includes('finished'), 5000, 'finished event');
    close();
    expect(seen).toEqual(['submitted', 'claimed', 'running', 'finished']);
  });

  it('idempotency keys give the same task', async () => {
    const { client } = await fleet(1);
    const a = await client.submit('echo', { n: 1 }, { idempotencyKey: 'same-key' });
    const b = await client.submit('echo', { n: 2 }, { idempotencyKey: 'same-key' });
    expect(b.id).toBe(a.id);
  });

  it('submit-and-wait answers the final task, the existing one for a repeated key, or the current state when time is up', async () => {
    const { client, url } = await fleet(1);
    const post = async (body: unknown, query = 'wait=true') => {
      const r = await fetch(`${url}/api/tasks?${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return {
        status: r.status,
        ...((await r.json()) as { task: { id: string; state: string }; created?: boolean }),
      };
    };
    const first = await post({ capability: 'echo', payload: { n: 1 }, idempotencyKey: 'wait-key' });
    expect(first).toMatchObject({ status: 200, created: true, task: { state: 'succeeded' } });
    const again = await post({ capability: 'echo', payload: { n: 2 }, idempotencyKey: 'wait-key' });
    expect(again).toMatchObject({ created: false, task: { id: first.task.id, state: 'succeeded' } });
    const slow = await post({ capability: 'sleep', payload: { ms: 3000 } }, 'wait=true&timeoutMs=200');
    expect(slow.created).toBe(true);
    expect(['queued', 'assigned', 'running']).toContain(slow.task.state);
    const bad = await post({ capability: 'echo', payload: {}, id: 42 });
    expect(bad.status).toBe(400);
    // The client's execute() rides on the same path and goes on waiting past its first slice.
    const partial = await client.execute('sleep', { ms: 3000 }, { waitMs: 200 });
    expect(['queued', 'assigned', 'running']).toContain(partial.state);
    expect((await client.execute('sleep', { ms: 50 })).state).toBe('succeeded');
  });

  it('cancels a running task on its worker', async () => {
    const { client } = await fleet(1);
    const t = await client.submit('sleep', { ms: 10_000 });
    await waitFor(async () => (await client.get(t.id)).state === 'running', 5000, 'task running');
    const c = await client.cancel(t.id);
    expect(c.state).toBe('cancelled');
    await waitFor(() => m!.manager.inFlight === 0, 3000, 'slot freed');
  });

  it('a task timeout kills it on the worker and is retried, then times out', async () => {
    const { client } = await fleet(1);
    const t = await client.execute('sleep', { ms: 5000 }, { timeoutMs: 150, maxAttempts: 2 });
    expect(t.state).toBe('timed_out');
    expect(t.attempts).toHaveLength(2);
    expect(t.error?.code).toBe('timeout');
  });
});
