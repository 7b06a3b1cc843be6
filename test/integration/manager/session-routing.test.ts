/**
 * The dispatcher's half of session affinity, fast, with echo workers as real processes: a session's tasks
 * wait for their worker even when the strategy would pick the other (idle) one, while one-shot tasks flow to
 * both; a worker killed with session tasks running and waiting ends all of them `session_lost` (none runs
 * on the other worker), and `create-if-missing` moves the session.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientTask } from '../../../src/client/fleet-client.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';
import { startManager, type TestManager } from '../../helpers/manager.js';

describe('session routing through the dispatcher', () => {
  let m: TestManager | undefined;
  const workers: WorkerProcess[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) w.kill('SIGKILL');
    await m?.stop();
    m = undefined;
  });

  async function fleet(): Promise<TestManager> {
    m = await startManager();
    for (let i = 0; i < 2; i++) workers.push(await spawnWorker('echo'));
    for (const w of workers) await m.manager.registerWorker({ endpoint: w.endpoint });
    await waitFor(
      async () => (await m!.manager.getWorkerStatus()).filter((w) => w.status === 'online').length === 2,
      15_000,
      'workers online',
    );
    return m;
  }

  const processOf = async (workerId: string): Promise<WorkerProcess> => {
    const view = (await m!.manager.getWorkerStatus()).find((w) => w.workerId === workerId);
    const proc = workers.find((w) => w.endpoint === view?.endpoint);
    if (!proc) throw new Error(`no process for ${workerId}`);
    return proc;
  };

  it('keeps a session on its worker while the other one is idle, and ends it when its worker dies', async () => {
    const { client } = await fleet();
    const first = await client.execute('sleep', { ms: 1 }, { sessionId: 'S' });
    expect(first.state).toBe('succeeded');
    const home = first.workerId!;

    // Eight session tasks of 40 ms, then one-shot tasks: the session's tasks queue for
    // their worker (least-load alone would send half of them to the idle one), the others pass them by.
    const session = await Promise.all(
      Array.from({ length: 8 }, () => client.submit('sleep', { ms: 40 }, { sessionId: 'S' })),
    );
    const oneShot = await Promise.all(Array.from({ length: 8 }, () => client.submit('sleep', { ms: 40 })));
    const done = await Promise.all([...session, ...oneShot].map((t) => client.wait(t.id, 20_000)));
    expect(done.every((t) => t.state === 'succeeded')).toBe(true);
    expect(new Set(done.slice(0, 8).map((t) => t.workerId))).toEqual(new Set([home]));
    // The one-shot tasks were not held up behind the session's: the other worker ran them meanwhile.
    expect(done.slice(8).filter((t) => t.workerId !== home).length).toBeGreaterThanOrEqual(4);

    // The home worker's slots full of session tasks and three more waiting for it; then the worker dies.
    const slots = (await m!.manager.getWorkerStatus()).find((w) => w.workerId === home)!.maxConcurrency;
    const running = await Promise.all(
      Array.from({ length: slots + 3 }, () => client.submit('sleep', { ms: 5_000 }, { sessionId: 'S' })),
    );
    await waitFor(
      async () =>
        (await Promise.all(running.map((t) => client.get(t.id)))).filter((t) => t.state === 'running')
          .length === slots,
      30_000,
      'the home worker full of session tasks',
      50,
    );
    // The waiting ones wait for it although the other worker is idle.
    expect(
      (await Promise.all(running.map((t) => client.get(t.id)))).filter((t) => t.state === 'queued'),
    ).toHaveLength(3);
    const victim = await processOf(home);
    victim.kill('SIGKILL');
    await victim.exited;
    const ended = await Promise.all(running.map((t) => client.wait(t.id, 20_000)));
    for (const t of ended) {
      expect(t.state, JSON.stringify(t.error)).toBe('failed');
      expect(t.error?.code).toBe('session_lost');
      // None of them ran on the surviving worker.
      for (const a of t.attempts) expect(a.workerId).toBe(home);
    }
    const late: ClientTask = await client.execute('sleep', { ms: 1 }, { sessionId: 'S' });
    expect(late.error?.code).toBe('session_lost');

    const moved = await client.execute('sleep', { ms: 1 }, { sessionId: 'S', session: 'create-if-missing' });
    expect(moved.state).toBe('succeeded');
    expect(moved.workerId).not.toBe(home);
    const after = await client.execute('sleep', { ms: 1 }, { sessionId: 'S' });
    expect(after.workerId).toBe(moved.workerId);
  }, 90_000);
});
