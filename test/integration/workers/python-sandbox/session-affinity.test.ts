/**
 * Session affinity end to end: two real python-sandbox workers (bubblewrap sandboxes), managers as real
 * processes, in memory mode (one manager) and in Redis mode (two managers sharing one Redis, tasks submitted
 * through both). A session's tasks keep their variables and files because every one of them runs on the
 * worker holding the session, while one-shot load keeps both workers busy; killing that worker makes the
 * session's next task fail `session_lost` (never a silently fresh interpreter), and `create-if-missing`
 * starts the session afresh on the survivor, which becomes its home.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  clusterConfig,
  listWorkers,
  spawnManager,
  type ApiTask,
  type ManagerProcess,
} from '../../../helpers/distributed.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../../helpers/processes.js';
import { deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../../../helpers/redis.js';
import { sweepStaleDirs } from '../../../../src/workers/python-sandbox/workspace.js';

interface SessionTask extends ApiTask {
  output?: { stdout?: string };
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

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

/** Counts the session's runs in a variable and in a file; prints both, so a fresh interpreter shows. */
const STEP = [
  'try:',
  '    n',
  'except NameError:',
  '    n = 0',
  'n += 1',
  "with open('runs.txt', 'a') as f:",
  "    f.write(f'{n}\\n')",
  "print(n, len(open('runs.txt').read().split()))",
].join('\n');

async function pythonWorker(): Promise<WorkerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-affinity-'));
  chmodSync(dir, 0o711); // sandbox uids pass through to their own directories
  const file = join(dir, 'fleet.yaml');
  writeFileSync(
    file,
    `python_sandbox:\n  max_concurrent_tasks: 3\n  workspace: ${join(dir, 'ws')}\n  sandbox:\n    pool_size: 1\n    max_sessions: 8\n`,
  );
  const worker = await spawnWorker('python-sandbox', { args: ['-c', file] });
  cleanups.push(async () => {
    if (worker.proc.exitCode === null && worker.proc.signalCode === null) {
      worker.kill('SIGTERM');
      await worker.exited;
    }
    // A worker killed with SIGKILL leaves its sandboxes' workspace mounts: what its next start would sweep.
    sweepStaleDirs(join(dir, 'ws'));
    rmSync(dir, { recursive: true, force: true });
  });
  return worker;
}

async function managers(mode: 'memory' | 'redis', endpoints: string[]): Promise<ManagerProcess[]> {
  const prefix = uniquePrefix('fleet-affinity');
  const cluster = clusterConfig({
    redisUrl: redis.url,
    prefix,
    ...(mode === 'memory' ? { manager: { store: 'memory' } } : {}),
  });
  cleanups.push(async () => {
    cluster.cleanup();
    await deleteKeys(redis.url, prefix);
  });
  const env: Record<string, string> = mode === 'memory' ? { FLEET_STORE: 'memory' } : {};
  const out: ManagerProcess[] = [];
  for (let i = 0; i < (mode === 'memory' ? 1 : 2); i++) {
    const m = await spawnManager(cluster, { workers: endpoints, env });
    cleanups.push(() => m.stop());
    out.push(m);
  }
  // Every manager sees both workers online (in Redis mode, each dialled by whichever manager owns it).
  for (const m of out) {
    await waitFor(
      async () =>
        (await listWorkers(m.url)).filter((w) => w.workerType === 'python-sandbox' && w.status === 'online')
          .length === 2,
      30_000,
      'both python-sandbox workers online',
      100,
    );
  }
  return out;
}

const run = async (m: ManagerProcess, body: Record<string, unknown>): Promise<SessionTask> =>
  (
    await api<{ task: SessionTask }>(m.url, '/api/tasks?wait=1', {
      method: 'POST',
      body: { capability: 'python-execution', timeoutMs: 60_000, ...body },
    })
  ).task;

describe.each(['memory', 'redis'] as const)('session affinity, two python-sandbox workers (%s)', (mode) => {
  it('keeps each session on its worker under load on both, and a lost worker ends its session with session_lost', async () => {
    const workers = [await pythonWorker(), await pythonWorker()];
    const ms = await managers(
      mode,
      workers.map((w) => w.endpoint),
    );
    const via = (i: number): ManagerProcess => ms[i % ms.length]!;
    const tag = `${mode}-${process.pid}-${Date.now()}`;

    // One-shot load through every manager, the whole time the sessions run.
    let loading = true;
    const loadWorkers = new Set<string>();
    const load = (async () => {
      const failures: string[] = [];
      for (let round = 0; loading || round < 2; round++) {
        const batch = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            run(via(i), { payload: { code: 'import time\ntime.sleep(0.05)\nsum(range(100000))' } }),
          ),
        ).catch((err: unknown) => {
          loading = false; // the managers are going away (a failed test): stop loading them
          failures.push(String(err));
          return [];
        });
        for (const t of batch) {
          if (t.state === 'succeeded' && t.workerId) loadWorkers.add(t.workerId);
          else failures.push(`${t.state} ${t.error?.code ?? ''}`);
        }
      }
      return failures;
    })();

    // Two sessions of 20 steps each, submitted alternately through the managers.
    const session = async (name: string): Promise<string> => {
      const homes = new Set<string>();
      for (let i = 1; i <= 20; i++) {
        const t = await run(via(i), { sessionId: name, payload: { code: STEP } });
        expect(t.state, JSON.stringify(t.error)).toBe('succeeded');
        expect(t.output?.stdout?.trim()).toBe(`${i} ${i}`);
        homes.add(t.workerId ?? '');
      }
      expect([...homes]).toHaveLength(1);
      return [...homes][0]!;
    };
    let homes: string[];
    try {
      homes = await Promise.all([session(`a-${tag}`), session(`b-${tag}`)]);
    } finally {
      loading = false;
    }
    const [homeA, homeB] = homes;
    expect(await load).toEqual([]);
    expect(loadWorkers.size).toBe(2);

    // Kill the worker holding session a; the session's next task fails session_lost on every manager.
    const workerIds = new Map<string, WorkerProcess>();
    for (const w of await listWorkers(ms[0]!.url)) {
      const proc = workers.find((p) => p.endpoint === w.endpoint);
      if (proc) workerIds.set(w.workerId, proc);
    }
    const victim = workerIds.get(homeA!);
    expect(victim).toBeDefined();
    victim!.kill('SIGKILL');
    await victim!.exited;
    for (const m of ms) {
      await waitFor(
        async () => (await listWorkers(m.url)).find((w) => w.workerId === homeA)?.status !== 'online',
        20_000,
        `manager ${m.id} to see ${homeA} gone`,
        100,
      );
    }
    for (const m of ms) {
      const lost = await run(m, { sessionId: `a-${tag}`, payload: { code: STEP } });
      expect(lost.state).toBe('failed');
      expect(lost.error?.code).toBe('session_lost');
      expect(lost.error?.details).toMatchObject({ sessionId: `a-${tag}`, workerId: homeA });
      expect(lost.attempts).toEqual([]);
    }

    // create-if-missing starts it afresh on the survivor, which is its home from then on.
    const survivor = [...workerIds.keys()].find((id) => id !== homeA)!;
    const fresh = await run(via(0), {
      sessionId: `a-${tag}`,
      session: 'create-if-missing',
      payload: { code: STEP },
    });
    expect(fresh.state, JSON.stringify(fresh.error)).toBe('succeeded');
    expect(fresh.output?.stdout?.trim()).toBe('1 1');
    expect(fresh.workerId).toBe(survivor);
    for (let i = 2; i <= 4; i++) {
      const t = await run(via(i), { sessionId: `a-${tag}`, payload: { code: STEP } });
      expect(t.state, JSON.stringify(t.error)).toBe('succeeded');
      expect(t.output?.stdout?.trim()).toBe(`${i} ${i}`);
      expect(t.workerId).toBe(survivor);
    }
    // Session b: still on the survivor with its state, or lost with the victim, never silently fresh.
    const b = await run(via(1), { sessionId: `b-${tag}`, payload: { code: STEP } });
    if (homeB === homeA) expect(b.error?.code).toBe('session_lost');
    else expect(b.output?.stdout?.trim()).toBe('21 21');
  }, 180_000);
});
