/**
 * The echo worker as a real process (the built CLI): signals and the crash capability end the process
 * itself, which an in-process test cannot show.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectFakeManager } from '../../../helpers/fake-manager.js';
import { spawnWorker, type WorkerProcess } from '../../../helpers/processes.js';

describe('fleet worker echo as a process', () => {
  let worker: WorkerProcess | undefined;
  afterEach(() => {
    if (worker && worker.proc.exitCode === null && worker.proc.signalCode === null) worker.kill('SIGKILL');
    worker = undefined;
  });

  it('SIGTERM drains: running tasks finish, new ones are refused, then the process exits 0', async () => {
    worker = await spawnWorker('echo');
    const fm = await connectFakeManager(worker.endpoint);
    const running = fm.assign('sleep', { ms: 400 });
    await new Promise((r) => setTimeout(r, 100));
    worker.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    expect(await fm.assign('echo', {})).toMatchObject({ type: 'task.error', error: { code: 'draining' } });
    expect(await running).toMatchObject({ type: 'task.result' });
    await worker.exited;
    expect(worker.proc.exitCode).toBe(0);
  });

  it('crash kills the worker process mid-task; the manager sees the socket drop', async () => {
    worker = await spawnWorker('echo');
    const fm = await connectFakeManager(worker.endpoint);
    const answer = fm.assign('crash', {});
    await expect(answer).rejects.toMatchObject({ code: 'worker_lost' });
    await worker.exited;
    expect(worker.proc.signalCode).toBe('SIGKILL');
    expect((await fm.closed).code).toBe(1006);
  });

  it('crash with an exit code exits with it', async () => {
    worker = await spawnWorker('echo');
    const fm = await connectFakeManager(worker.endpoint);
    await expect(fm.assign('crash', { exitCode: 7 })).rejects.toMatchObject({ code: 'worker_lost' });
    await worker.exited;
    expect(worker.proc.exitCode).toBe(7);
  });
});
