/**
 * A worker lost under its tasks is dialed again at once (not at the next discovery round): a dead one
 * refuses the dial and its held tasks re-queue then, instead of after the hold (heartbeat_interval x
 * missed_heartbeats). The manager runs on a fake clock that is never advanced, so neither a discovery round
 * nor the end of the hold can be what releases the task: only the redial can.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { FakeClock } from '../../../src/manager/clock.js';
import { WorkerManager } from '../../../src/manager/manager.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';

const procs: WorkerProcess[] = [];
let manager: WorkerManager | undefined;
afterEach(async () => {
  await manager?.stop();
  manager = undefined;
  for (const p of procs.splice(0)) {
    p.kill();
    await p.exited;
  }
});

describe('a lost worker is redialed at once', () => {
  it('kill -9 of a worker under a task: the refused redial re-queues the task without waiting for the hold', async () => {
    const w = await spawnWorker('echo');
    procs.push(w);
    const config = parseConfig({
      manager: { port: 0, log_level: 'silent', health: { heartbeat_interval: '10s', missed_heartbeats: 3 } },
    });
    manager = new WorkerManager(config, {
      clock: new FakeClock(1_000_000),
      logger: pino({ level: 'silent' }),
    });
    await manager.start();
    const m = manager;
    expect((await m.registerWorker({ endpoint: w.endpoint })).workerId).toBeDefined();
    const { task } = await m.submit({ capability: 'sleep', payload: { ms: 20_000 } });
    await waitFor(async () => (await m.getTask(task.id)).state === 'running', 10_000, 'the task running', 10);
    // Only a worker that beat on its connection has its tasks held when lost; its first heartbeat reports memory.
    await waitFor(() => (m.localWorkers()[0]?.metrics.memoryUsage ?? 0) > 0, 5_000, 'a heartbeat', 10);
    w.kill('SIGKILL');
    await w.exited;
    await waitFor(
      async () => (await m.getTask(task.id)).attempts[0]?.outcome === 'worker_lost',
      5_000,
      'the held attempt to end as worker_lost after the refused redial',
      10,
    );
    const t = await m.getTask(task.id);
    expect(t.attempts[0]?.error?.message).toMatch(/a dial of it failed/);
  }, 30_000);
});
