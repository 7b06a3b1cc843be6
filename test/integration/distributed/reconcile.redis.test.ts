/**
 * Issue 14 point 4, reconciliation in distributed mode with real processes: a manager is `kill -9`ed while
 * its workers run tasks. The workers keep running them (reconnect_grace), keep the answers of those that
 * finish meanwhile, and report both to the manager that takes them over; it adopts the leases instead of
 * letting them lapse and re-run. Executions are counted on the workers (FLEET_ECHO_EXECUTION_LOG): every
 * task runs exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  clusterConfig,
  listWorkers,
  spawnManager,
  type ApiTask,
  type Cluster,
  type ManagerProcess,
} from '../../helpers/distributed.js';
import { executionLog, type ExecutionLog } from '../../helpers/executions.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';
import { startPrivateRedis, uniquePrefix, type PrivateRedis } from '../../helpers/redis.js';

const SLOTS = 4;

let redis: PrivateRedis;
let cluster: Cluster;
let log: ExecutionLog;
const workers: WorkerProcess[] = [];
const managers: ManagerProcess[] = [];

beforeAll(async () => {
  redis = await startPrivateRedis();
  log = executionLog();
  cluster = clusterConfig({
    redisUrl: redis.url,
    prefix: uniquePrefix('fleet-reconcile'),
    // Longer than a takeover (the ownership lease, 3 s here, plus a discovery round): the new owner adopts
    // the dead manager's leases before their locks lapse.
    lockDuration: '8s',
    sections: { echo: { max_concurrent_tasks: SLOTS } },
  });
});

afterAll(async () => {
  for (const m of managers) m.kill();
  for (const w of workers) w.kill();
  await Promise.all([...managers.map((m) => m.exited), ...workers.map((w) => w.exited)]);
  cluster?.cleanup();
  log?.cleanup();
  await redis?.close();
});

async function metric(url: string, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && l.includes(label))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

describe('reconciliation after a manager kill -9 (issue 14 point 4)', () => {
  it('the surviving manager adopts the tasks the workers kept running or finished: each runs exactly once', async () => {
    for (let i = 0; i < 2; i++)
      workers.push(
        await spawnWorker('echo', {
          args: ['--config', cluster.configFile],
          env: { FLEET_ECHO_EXECUTION_LOG: log.file },
        }),
      );
    const endpoints = workers.map((w) => w.endpoint);
    const a = await spawnManager(cluster, { workers: endpoints });
    managers.push(a);
    await waitFor(
      async () => (await listWorkers(a.url)).filter((w) => w.status !== 'offline').length === 2,
      20_000,
      'both workers on manager A',
      50,
    );
    const b = await spawnManager(cluster);
    managers.push(b);

    // Two waves per worker slot: some finish while no manager is connected (held answers), the others
    // are still running when the new owner connects.
    const n = 2 * SLOTS;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const ms = i % 2 === 0 ? 1500 : 7000;
      const t = await api<{ task: ApiTask }>(a.url, '/api/tasks', {
        method: 'POST',
        body: { id: `reconcile-${i}`, capability: 'sleep', payload: { ms }, timeoutMs: 30_000 },
      });
      ids.push(t.task.id);
    }
    await waitFor(() => log.total() === n, 10_000, 'every task running on a worker', 20);
    a.kill();
    await a.exited;

    let tasks: ApiTask[] = [];
    await waitFor(
      async () => {
        tasks = (await api<{ tasks: ApiTask[] }>(b.url, '/api/tasks?limit=100')).tasks;
        return (
          tasks.length === n && tasks.every((t) => ['succeeded', 'failed', 'timed_out'].includes(t.state))
        );
      },
      45_000,
      'every task final on manager B',
      100,
    );
    expect(tasks.map((t) => t.state)).toEqual(Array(n).fill('succeeded'));
    // Recorded once and run once: one attempt each, one handler run each on the workers.
    expect(tasks.filter((t) => t.attempts.length !== 1).map((t) => t.id)).toEqual([]);
    expect(log.duplicates()).toEqual([]);
    expect(log.total()).toBe(n);
    expect(await metric(b.url, 'fleet_reconciled_tasks_total', 'outcome="adopted"')).toBe(n);
    expect(await metric(b.url, 'fleet_task_reexecutions_total')).toBe(0);
  }, 90_000);
});
