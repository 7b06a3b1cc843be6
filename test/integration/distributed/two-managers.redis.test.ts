/**
 * Distributed mode end to end: managers as separate processes (`fleet manager` with FLEET_STORE=redis) on one
 * Redis, echo workers as separate processes. Two managers share the queue and both dispatch; no worker is
 * ever given more than its slots; every manager shows the whole fleet; a `kill -9`ed manager's tasks run
 * again elsewhere once their locks expire and its workers are dialled by the survivor.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  busyRefusals,
  clusterConfig,
  getTask,
  listWorkers,
  registerWorker,
  spawnManager,
  submitTask,
  type ApiTask,
  type Cluster,
  type ManagerProcess,
} from '../../helpers/distributed.js';
import { freePort, spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';
import { countKeys, deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../../helpers/redis.js';

const FINAL = new Set(['succeeded', 'failed', 'cancelled', 'timed_out']);

let redis: TestRedis;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  redis = await getTestRedis();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await redis.close();
});

async function setUp(options: { lockDuration?: string; slots?: number } = {}): Promise<{
  cluster: Cluster;
  prefix: string;
}> {
  const prefix = uniquePrefix('fleet-dist');
  const cluster = clusterConfig({
    redisUrl: redis.url,
    prefix,
    ...(options.lockDuration ? { lockDuration: options.lockDuration } : {}),
    sections: { echo: { max_concurrent_tasks: options.slots ?? 2 } },
  });
  cleanups.push(async () => {
    cluster.cleanup();
    await deleteKeys(redis.url, prefix);
    expect(await countKeys(redis.url, prefix)).toBe(0);
  });
  return { cluster, prefix };
}

async function workers(cluster: Cluster, n: number): Promise<WorkerProcess[]> {
  const out = await Promise.all(
    Array.from({ length: n }, () => spawnWorker('echo', { args: ['--config', cluster.configFile] })),
  );
  cleanups.push(async () => {
    for (const w of out) w.kill();
    await Promise.all(out.map((w) => w.exited));
  });
  return out;
}

async function manager(cluster: Cluster, options: { workers?: string[] } = {}): Promise<ManagerProcess> {
  const m = await spawnManager(cluster, options);
  cleanups.push(() => m.stop());
  return m;
}

/** Waits until the manager's fleet view has these endpoints online, and returns endpoint → owner id. */
async function waitForView(
  m: ManagerProcess,
  endpoints: string[],
  what: string,
): Promise<Map<string, string>> {
  let owners = new Map<string, string>();
  await waitFor(
    async () => {
      const list = await listWorkers(m.url);
      owners = new Map(
        list
          .filter((w) => w.status === 'online' || w.status === 'busy')
          .map((w) => [w.endpoint, w.ownerId ?? '']),
      );
      return endpoints.every((e) => owners.get(e));
    },
    20_000,
    what,
    50,
  );
  return owners;
}

async function waitAllFinal(base: string, ids: string[], timeoutMs: number): Promise<ApiTask[]> {
  const done = new Map<string, ApiTask>();
  await waitFor(
    async () => {
      const pending = ids.filter((id) => !done.has(id));
      const tasks = await Promise.all(pending.map((id) => getTask(base, id)));
      for (const t of tasks) if (FINAL.has(t.state)) done.set(t.id, t);
      return done.size === ids.length;
    },
    timeoutMs,
    `${ids.length} tasks to finish`,
    100,
  );
  return ids.map((id) => done.get(id)!);
}

describe('distributed mode: several manager processes on one Redis', () => {
  it('a manager whose Redis does not answer refuses to start, saying which Redis', async () => {
    const port = await freePort();
    const cluster = clusterConfig({
      redisUrl: `redis://127.0.0.1:${port}`,
      prefix: uniquePrefix('fleet-dist'),
    });
    cleanups.push(() => cluster.cleanup());
    const started = Date.now();
    const error = await spawnManager(cluster).then(
      (m) => {
        cleanups.push(() => m.stop());
        return undefined;
      },
      (err: unknown) => err as Error,
    );
    expect(error?.message).toMatch(
      new RegExp(
        `config_invalid: manager.store is redis but Redis at redis://127.0.0.1:${port}/? does not answer`,
      ),
    );
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 30_000);

  it('two managers share one queue, both dispatch, never overfill a worker, and show the same fleet', async () => {
    const { cluster } = await setUp({ slots: 2 });
    const [w1, w2, w3, w4] = await workers(cluster, 4);
    // A learns its workers from its config (FLEET_WORKERS), B through POST /api/workers.
    const a = await manager(cluster, { workers: [w1!.endpoint, w2!.endpoint] });
    await waitForView(a, [w1!.endpoint, w2!.endpoint], 'manager A to connect its configured workers');
    const b = await manager(cluster);
    await registerWorker(b.url, w3!.endpoint);
    await registerWorker(b.url, w4!.endpoint);
    const all = [w1!, w2!, w3!, w4!].map((w) => w.endpoint);

    // Shared view: each manager shows all four workers, with the same owners.
    const seenByA = await waitForView(a, all, 'manager A to show all four workers');
    const seenByB = await waitForView(b, all, 'manager B to show all four workers');
    expect(seenByA).toEqual(seenByB);
    expect(seenByA.get(w1!.endpoint)).toBe(a.id);
    expect(seenByA.get(w2!.endpoint)).toBe(a.id);
    expect(seenByA.get(w3!.endpoint)).toBe(b.id);
    expect(seenByA.get(w4!.endpoint)).toBe(b.id);

    // 80 tasks, alternately through A and B: more than the 8 slots, so both managers' workers stay busy.
    const submitted: { id: string; via: string }[] = [];
    for (let i = 0; i < 80; i++) {
      const via = i % 2 === 0 ? a : b;
      const t = await submitTask(via.url, { capability: 'sleep', payload: { ms: 20 + (i % 5) * 15 } });
      submitted.push({ id: t.id, via: via.id });
    }
    // The queue depth is the shared queue's: both managers report the same figures.
    const [statusA, statusB] = await Promise.all([
      api<{ queue: { depth: number } }>(a.url, '/api/status'),
      api<{ queue: { depth: number } }>(b.url, '/api/status'),
    ]);
    expect(Math.abs(statusA.queue.depth - statusB.queue.depth)).toBeLessThanOrEqual(8);

    const tasks = await waitAllFinal(
      a.url,
      submitted.map((s) => s.id),
      60_000,
    );
    expect(tasks.map((t) => t.state)).toEqual(tasks.map(() => 'succeeded'));
    // Every task finished exactly once, on its first attempt, and no worker ever refused for lack of slots.
    for (const t of tasks) expect(t.attempts.filter((x) => x.outcome === 'succeeded')).toHaveLength(1);
    expect(busyRefusals(tasks)).toBe(0);

    const ownerOfWorker = new Map((await listWorkers(a.url)).map((w) => [w.workerId, w.ownerId]));
    const ranOn = (t: ApiTask) => ownerOfWorker.get(t.attempts.at(-1)!.workerId);
    // Both managers dispatched, including tasks submitted through the other one.
    const crossed = submitted.filter((s, i) => ranOn(tasks[i]!) !== s.via);
    expect(new Set(tasks.map(ranOn))).toEqual(new Set([a.id, b.id]));
    expect(crossed.length).toBeGreaterThan(0);

    // Submit-and-wait through A answers tasks that B's workers ran too (the final event crosses over).
    const waited = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const r = await fetch(`${a.url}/api/tasks?wait=true&timeoutMs=30000`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ capability: 'sleep', payload: { ms: 30 + i } }),
        });
        return ((await r.json()) as { task: ApiTask }).task;
      }),
    );
    expect(waited.map((t) => t.state)).toEqual(waited.map(() => 'succeeded'));
    expect(new Set(waited.map(ranOn))).toEqual(new Set([a.id, b.id]));

    // The shared queue's own figures are on each manager's /metrics.
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toMatch(/^fleet_queue_held_tasks 0$/m);
    expect(metrics).toMatch(/^fleet_queue_stale_leases \d+$/m);
  }, 120_000);

  it('kill -9 of a manager: its tasks run again elsewhere after the lock expires and its workers are re-dialled', async () => {
    const { cluster } = await setUp({ lockDuration: '1500ms', slots: 2 });
    const [w1, w2] = await workers(cluster, 2);
    const a = await manager(cluster, { workers: [w1!.endpoint] });
    await waitForView(a, [w1!.endpoint], 'manager A to connect w1');
    const b = await manager(cluster);
    await registerWorker(b.url, w2!.endpoint);
    const owners = await waitForView(b, [w1!.endpoint, w2!.endpoint], 'manager B to show both workers');
    expect(owners.get(w1!.endpoint)).toBe(a.id);
    expect(owners.get(w2!.endpoint)).toBe(b.id);
    const endpointOf = new Map((await listWorkers(b.url)).map((w) => [w.workerId, w.endpoint]));
    const ownerOf = (t: ApiTask) => owners.get(endpointOf.get(t.workerId ?? '') ?? '');

    // Six 1.5 s tasks on four slots: two run on A's worker when A dies.
    const ids: string[] = [];
    for (let i = 0; i < 6; i++)
      ids.push((await submitTask(b.url, { capability: 'sleep', payload: { ms: 1500 } })).id);
    let onA: string[] = [];
    await waitFor(
      async () => {
        const tasks = await Promise.all(ids.map((id) => getTask(b.url, id)));
        onA = tasks.filter((t) => t.state === 'running' && ownerOf(t) === a.id).map((t) => t.id);
        return onA.length === 2;
      },
      10_000,
      'two tasks running on manager A’s worker',
      20,
    );

    const killedAt = Date.now();
    a.kill();
    await a.exited;

    // The survivor dials A's worker once A's ownership lease has lapsed.
    await waitFor(
      async () => (await listWorkers(b.url)).some((w) => w.endpoint === w1!.endpoint && w.ownerId === b.id),
      15_000,
      'manager B to take over w1',
      50,
    );
    const takeoverMs = Date.now() - killedAt;

    const tasks = await waitAllFinal(b.url, ids, 30_000);
    expect(tasks.map((t) => t.state)).toEqual(tasks.map(() => 'succeeded'));
    for (const t of tasks) expect(t.attempts.filter((x) => x.outcome === 'succeeded')).toHaveLength(1);
    for (const id of onA) {
      const t = tasks.find((x) => x.id === id)!;
      // The attempt on the dead manager ended as lost; the next one started only after the lock expired.
      expect(t.attempts[0]!.outcome).toBe('worker_lost');
      expect(t.attempts[1]!.startedAt - killedAt).toBeGreaterThanOrEqual(1000);
    }
    expect(busyRefusals(tasks)).toBe(0);
    expect(takeoverMs).toBeLessThan(15_000);
  }, 120_000);
});
