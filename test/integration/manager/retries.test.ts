/**
 * Issue 14 point 5 with real processes: a task that kills its worker is not passed from worker to worker
 * (poison_task after two), and a timed-out task runs again only when its capability is declared idempotent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';

describe('sane retries (issue 14 point 5)', () => {
  let m: TestManager | undefined;
  const procs: WorkerProcess[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    await m?.stop();
    m = undefined;
  });

  it('a task that kills two workers fails as poison_task and a third worker is never exposed to it', async () => {
    m = await startManager();
    const ws = [await spawnWorker('echo'), await spawnWorker('echo'), await spawnWorker('echo')];
    procs.push(...ws);
    for (const w of ws) await m.manager.registerWorker({ endpoint: w.endpoint });
    const task = await m.client.submit('crash', {}, { maxAttempts: 10 });
    const done = await m.client.wait(task.id, 30_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('poison_task');
    expect(done.attempts.map((a) => a.outcome)).toEqual(['worker_lost', 'worker_lost']);
    // Exactly two worker processes died; the third still serves.
    const alive = () => ws.filter((w) => w.proc.exitCode === null && w.proc.signalCode === null).length;
    await waitFor(() => alive() <= 1, 10_000, 'two workers gone');
    await new Promise((r) => setTimeout(r, 500));
    expect(alive()).toBe(1);
    expect((await m.client.execute('echo', { still: 'here' })).state).toBe('succeeded');
  }, 60_000);

  it('a timeout is retried for an idempotent capability and not for one that is not', async () => {
    // `sleep` is idempotent by default; declaring echo's section with no idempotent capability makes it not.
    m = await startManager({}, { sections: { echo: { idempotent: [] } } });
    const w = await spawnWorker('echo');
    procs.push(w);
    await m.manager.registerWorker({ endpoint: w.endpoint });
    const t = await m.client.submit('sleep', { ms: 5000 }, { timeoutMs: 300, maxAttempts: 3 });
    const done = await m.client.wait(t.id, 30_000);
    expect(done.state).toBe('timed_out');
    expect(done.attempts).toHaveLength(1);
  }, 60_000);
});
