/**
 * The chaos test of distributed mode: two manager processes on a private redis-server, six echo workers,
 * 2 000 tasks of mixed duration submitted through both managers. During the run one manager and two
 * workers are `kill -9`ed at random moments, then restarted. Afterwards every accepted task has completed
 * exactly once (none lost, no result recorded twice), retries stayed within policy, no worker was ever
 * given more than its slots, and the figures are printed: tasks lost, duplicates, time to detect each death,
 * time until the victims' tasks ran again.
 *
 * Executions are also counted on the worker side (FLEET_ECHO_EXECUTION_LOG: one line per handler run):
 * no dispatch ever runs twice, a dead manager's tasks are taken over by the survivor from the workers that
 * kept running them (reconciliation, not run again, when the takeover beats the locks), and second runs
 * stay within the documented bound: the slots of each killed worker, plus those of the dead manager's
 * workers whose locks lapsed before the takeover (none on an unloaded machine).
 *
 * Bounded: lock_duration 8 s (longer than a takeover, so the survivor adopts the dead manager's leases
 * before their locks lapse), heartbeat 200 ms; on the 2-core CI machine the whole file takes about a
 * minute. The private Redis is never the shared one: nothing here may disturb other test runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  busyRefusals,
  clusterConfig,
  listWorkers,
  registerWorker,
  spawnManager,
  type ApiTask,
  type ApiWorker,
  type Cluster,
  type ManagerProcess,
} from '../../helpers/distributed.js';
import { executionLog, type ExecutionLog } from '../../helpers/executions.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';
import { startPrivateRedis, uniquePrefix, type PrivateRedis } from '../../helpers/redis.js';

const TASKS = 2000;
const WORKERS = 6;
const SLOTS = 4;
const MAX_ATTEMPTS = 5;
const LOCK_DURATION_MS = 8000;
const WORKER_KILLS = 2;
const SUBMIT_CONCURRENCY = 16;

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
    prefix: uniquePrefix('fleet-chaos'),
    lockDuration: `${LOCK_DURATION_MS}ms`,
    maxAttempts: MAX_ATTEMPTS,
    manager: { queue: { max_size: 10_000, retain_finished: 10_000 } },
    sections: { echo: { max_concurrent_tasks: SLOTS } },
  });
});

afterAll(async () => {
  for (const m of managers) m.kill();
  for (const w of workers) w.kill();
  await Promise.all([...managers.map((m) => m.exited), ...workers.map((w) => w.exited)]);
  cluster.cleanup();
  log.cleanup();
  await redis.close();
});

/** Random, but reproducible from the printed seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function taskFor(i: number, random: () => number): Record<string, unknown> {
  const r = random();
  // Mixed: instant echoes, short sleeps, and a tail of long ones that are likely in flight at a kill.
  if (r < 0.5) return { id: `chaos-${i}`, capability: 'echo', payload: { i } };
  if (r < 0.9)
    return { id: `chaos-${i}`, capability: 'sleep', payload: { ms: 10 + Math.floor(random() * 90) } };
  return { id: `chaos-${i}`, capability: 'sleep', payload: { ms: 400 + Math.floor(random() * 1100) } };
}

interface Death {
  what: string;
  kind: 'manager' | 'worker';
  at: number;
  /** Worker ids whose tasks died with it (the worker itself, or every worker the manager owned). */
  workerIds: Set<string>;
  /** The dead manager's id, or the dead worker's endpoint. */
  id: string;
  endpoints: Set<string>;
  restartedAt?: number;
  /** When a live manager's fleet view showed it: a worker offline, a manager's workers taken over. */
  detectedAt?: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};

describe('chaos: two managers, six workers, kill -9 during a 2 000-task run', () => {
  it('completes every accepted task exactly once', async () => {
    const seed = Number(process.env.FLEET_CHAOS_SEED ?? Date.now() % 1_000_000);
    const random = rng(seed);
    console.log(`chaos seed ${seed} (replay with FLEET_CHAOS_SEED=${seed})`);

    const workerEnv = { FLEET_ECHO_EXECUTION_LOG: log.file };
    for (let i = 0; i < WORKERS; i++)
      workers.push(await spawnWorker('echo', { args: ['--config', cluster.configFile], env: workerEnv }));
    const endpoints = workers.map((w) => w.endpoint);
    // A dials the first three from its config; B is told about the other three through the API.
    managers.push(await spawnManager(cluster, { workers: endpoints.slice(0, 3) }));
    managers.push(await spawnManager(cluster));
    for (const e of endpoints.slice(3)) await registerWorker(managers[1]!.url, e);
    const live = () => managers.filter((m) => m.proc.exitCode === null && m.proc.signalCode === null);
    await waitFor(
      async () => {
        const list = await listWorkers(managers[1]!.url);
        return endpoints.every((e) => list.some((w) => w.endpoint === e && w.status !== 'offline'));
      },
      20_000,
      'all six workers connected',
      50,
    );

    // ── the run ─────────────────────────────────────────────────────────────────────────────────────
    const accepted = new Set<string>();
    let submitErrors = 0;
    const submitOne = async (body: Record<string, unknown>): Promise<void> => {
      // A dead manager refuses the connection: the same id through the other one (a repeat is a no-op).
      for (let tries = 0; tries < 20; tries++) {
        const targets = live();
        const m = targets[Math.floor(random() * targets.length)];
        if (!m) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        try {
          await api(m.url, '/api/tasks', { method: 'POST', body });
          accepted.add(body.id as string);
          return;
        } catch {
          submitErrors++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      throw new Error(`task ${String(body.id)} could not be submitted through any manager`);
    };

    const startedAt = Date.now();
    const bodies = Array.from({ length: TASKS }, (_, i) => taskFor(i, random));
    let next = 0;
    const submitting = Promise.all(
      Array.from({ length: SUBMIT_CONCURRENCY }, async () => {
        while (next < bodies.length) await submitOne(bodies[next++]!);
      }),
    );

    // Ownership right before a kill says which workers a dead manager took down with it.
    // A manager the harness has just killed still looks live until its exit is seen: ask the next one.
    const ownersNow = async (): Promise<ApiWorker[]> => {
      for (let round = 0; round < 20; round++) {
        for (const m of live()) {
          const list = await listWorkers(m.url).catch(() => undefined);
          if (list) return list;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('no live manager answered for the fleet view');
    };
    const deaths: Death[] = [];
    const watching: Promise<void>[] = [];
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const killManager = async (index: number, after: number): Promise<void> => {
      await sleep(after);
      const m = managers[index]!;
      const owned = (await ownersNow()).filter((w) => w.ownerId === m.id && w.status !== 'offline');
      const death: Death = {
        what: `manager ${index === 0 ? 'A' : 'B'}`,
        kind: 'manager',
        at: Date.now(),
        id: m.id,
        workerIds: new Set(owned.map((w) => w.workerId)),
        endpoints: new Set(owned.map((w) => w.endpoint)),
      };
      m.kill();
      deaths.push(death);
      watching.push(watch(death));
      await m.exited;
      await sleep(1500 + random() * 1500);
      managers[index] = await spawnManager(cluster, {
        port: m.port,
        ...(index === 0 ? { workers: endpoints.slice(0, 3) } : {}),
      });
      death.restartedAt = Date.now();
    };
    const killWorker = async (index: number, after: number): Promise<void> => {
      await sleep(after);
      const w = workers[index]!;
      const ids = (await ownersNow()).filter((x) => x.endpoint === w.endpoint).map((x) => x.workerId);
      const death: Death = {
        what: `worker ${index + 1}`,
        kind: 'worker',
        at: Date.now(),
        id: w.endpoint,
        workerIds: new Set(ids),
        endpoints: new Set(),
      };
      w.kill();
      deaths.push(death);
      watching.push(watch(death));
      await w.exited;
      await sleep(1000 + random() * 2000);
      workers[index] = await spawnWorker('echo', {
        port: w.port,
        args: ['--config', cluster.configFile],
        env: workerEnv,
      });
      death.restartedAt = Date.now();
    };
    /** Polls the live managers' fleet view until it shows the death: a worker offline or gone, a manager's
     * workers owned by someone else (takeover). */
    const watch = async (d: Death): Promise<void> => {
      const deadline = d.at + 60_000;
      while (Date.now() < deadline) {
        const views = await Promise.all(live().map((m) => listWorkers(m.url).catch(() => undefined)));
        const known = views.filter((v): v is ApiWorker[] => v !== undefined);
        const rows = known.flat().filter((w) => d.workerIds.has(w.workerId) || d.endpoints.has(w.endpoint));
        const seen =
          d.kind === 'worker'
            ? known.length > 0 &&
              [...d.workerIds].every((id) => rows.every((w) => w.workerId !== id || w.status === 'offline'))
            : [...d.endpoints].every((e) =>
                rows.some(
                  (w) =>
                    w.endpoint === e &&
                    w.ownerId !== undefined &&
                    w.ownerId !== d.id &&
                    w.status !== 'offline',
                ),
              );
        if (seen) {
          d.detectedAt = Date.now();
          return;
        }
        await sleep(50);
      }
    };
    const victims = [...Array(WORKERS).keys()].sort(() => random() - 0.5).slice(0, WORKER_KILLS);
    const chaos = Promise.all([
      killManager(random() < 0.5 ? 0 : 1, 1000 + random() * 3000),
      ...victims.map((v) => killWorker(v, 500 + random() * 4000)),
    ]);

    await submitting;
    await chaos;
    await Promise.all(watching);
    const submittedMs = Date.now() - startedAt;

    // ── afterwards ──────────────────────────────────────────────────────────────────────────────────
    let tasks: ApiTask[] = [];
    await waitFor(
      async () => {
        const m = live()[0];
        if (!m) return false;
        const res = await api<{ tasks: ApiTask[] }>(m.url, '/api/tasks?limit=10000');
        tasks = res.tasks;
        return (
          tasks.filter((t) => ['succeeded', 'failed', 'cancelled', 'timed_out'].includes(t.state)).length >=
          accepted.size
        );
      },
      90_000,
      'every accepted task to reach a final state',
      250,
    ).catch(async (err: unknown) => {
      // Say what is stuck, where, and how to replay it.
      const states = new Map<string, number>();
      for (const t of tasks) states.set(t.state, (states.get(t.state) ?? 0) + 1);
      const stuck = tasks.filter((t) => !['succeeded', 'failed', 'cancelled', 'timed_out'].includes(t.state));
      const view = await ownersNow().catch(() => []);
      throw new Error(
        `${(err as Error).message}; seed ${seed}; states ${JSON.stringify([...states])}; ` +
          `deaths ${JSON.stringify(deaths.map((d) => ({ what: d.what, at: d.at - startedAt, ids: [...d.workerIds] })))}; ` +
          `stuck (first 5) ${JSON.stringify(stuck.slice(0, 5))}; workers ${JSON.stringify(view)}; ` +
          `managers ${managers.map((m) => `${m.id}: ${m.output().slice(-1500)}`).join('\n')}`,
      );
    });
    const finishedMs = Date.now() - startedAt;

    const byId = new Map(tasks.map((t) => [t.id, t]));
    // A task that happened to be running on both workers the harness killed has felled two workers, which is
    // exactly what poison_task is for: from the manager's side a kill -9 and a task that crashes its worker
    // look the same. It is the policy at work, not a lost task, and is reported apart.
    const felledByHarness = (t: ApiTask) =>
      t.attempts.filter((a) => a.outcome === 'worker_lost' && deaths.some((d) => d.workerIds.has(a.workerId)))
        .length >= 2;
    const poisonedByHarness = tasks.filter(
      (t) => accepted.has(t.id) && t.error?.code === 'poison_task' && felledByHarness(t),
    );
    const lost = [...accepted].filter(
      (id) => byId.get(id)?.state !== 'succeeded' && !poisonedByHarness.some((t) => t.id === id),
    );
    const duplicates = tasks.filter((t) => t.attempts.filter((a) => a.outcome === 'succeeded').length > 1);
    const outOfPolicy = tasks.filter(
      (t) =>
        t.attempts.length > t.maxAttempts ||
        t.attempts.length !== t.attempt ||
        t.attempts.slice(0, -1).some((a) => a.outcome !== 'worker_lost'),
    );
    const retried = tasks.filter((t) => t.attempts.length > 1);

    // Per death: its victims are the attempts running on its workers at the moment of the kill. An attempt
    // that succeeded was not cut (its result was already on the way when the kill landed), so it is no victim.
    const report = deaths.map((d) => {
      const hit = tasks.flatMap((t) =>
        t.attempts
          .map((a, i) => ({ t, a, next: t.attempts[i + 1] }))
          .filter(
            ({ a }) =>
              d.workerIds.has(a.workerId) &&
              a.outcome !== 'succeeded' &&
              a.startedAt <= d.at &&
              (a.finishedAt === undefined || a.finishedAt >= d.at),
          ),
      );
      const detect = hit.filter((h) => h.a.outcome === 'worker_lost').map((h) => h.a.finishedAt! - d.at);
      const again = hit.filter((h) => h.next).map((h) => h.next!.startedAt - d.at);
      return {
        death: d.what,
        inFlight: hit.length,
        // Worker: shown offline by a live manager. Manager: all its workers dialled by another manager.
        detectedInViewMs: d.detectedAt !== undefined ? d.detectedAt - d.at : null,
        // The first of its tasks declared lost: a worker's socket closing, a manager's lock expiring.
        firstTaskLostMs: detect.length ? Math.min(...detect) : null,
        ranAgainMedianMs: again.length ? median(again) : null,
        ranAgainMaxMs: again.length ? Math.max(...again) : null,
        restartedAfterMs: d.restartedAt !== undefined ? d.restartedAt - d.at : null,
      };
    });

    // Worker-side: handler runs per task, from the execution log.
    const runs = log.counts();
    const extraExecutions = [...runs.values()].reduce((sum, n) => sum + n - 1, 0);
    // Second runs a dead manager caused: its lock lapsed before another manager took the worker over (the
    // takeover beats lock_duration on an idle machine; under heavy load it may not).
    const lockLapsed = tasks
      .flatMap((t) => t.attempts)
      .filter((a) => (a.error as { message?: string } | undefined)?.message?.includes('lock expired')).length;
    const managerOwned = deaths.filter((d) => d.kind === 'manager').reduce((n, d) => n + d.endpoints.size, 0);
    const figures = {
      seed,
      accepted: accepted.size,
      executions: log.total(),
      extraExecutions,
      executionBound: (WORKER_KILLS + managerOwned) * SLOTS,
      lockLapsed,
      dispatchesRunTwice: log.attemptDuplicates().length,
      lost: lost.length,
      poisonedByHarness: poisonedByHarness.length,
      duplicates: duplicates.length,
      retried: retried.length,
      outOfPolicy: outOfPolicy.length,
      busyRefusals: busyRefusals(tasks),
      submitErrorsRetried: submitErrors,
      submittedInMs: submittedMs,
      allFinishedInMs: finishedMs,
      deaths: report,
    };
    console.log(`chaos figures: ${JSON.stringify(figures, null, 2)}`);

    expect(accepted.size).toBe(TASKS);
    expect(lost).toEqual([]);
    // No dispatch ever ran twice, every run was a recorded attempt, and second runs are bounded by the slots
    // of the killed workers and of the workers whose manager died (adopted, those add none).
    expect(log.attemptDuplicates()).toEqual([]);
    for (const [id, n] of runs)
      expect(n, `runs of ${id}`).toBeLessThanOrEqual(byId.get(id)?.attempts.length ?? 0);
    expect(extraExecutions).toBeLessThanOrEqual((WORKER_KILLS + managerOwned) * SLOTS);
    expect(duplicates.map((t) => t.id)).toEqual([]);
    expect(outOfPolicy.map((t) => t.id)).toEqual([]);
    expect(figures.busyRefusals).toBe(0);
    expect(deaths).toHaveLength(3);
    for (const d of report)
      expect(d.detectedInViewMs, `${d.death} never showed in the fleet view`).not.toBeNull();
    for (const d of report) {
      // A death with work in flight was noticed, and its tasks ran again: a worker's at once (its socket
      // closed), a manager's after its locks expired (about lock_duration, plus one stalled check).
      if (d.inFlight > 0) {
        expect(d.firstTaskLostMs).not.toBeNull();
        expect(d.ranAgainMaxMs).not.toBeNull();
      }
    }
  }, 240_000);
});
