/**
 * Issue 14 point 6: ownership is decided before dispatch. A manager that lost a worker's lease but has not
 * noticed yet (paused, cut off from Redis) still holds its connection; the new owner's welcome closes it on
 * the worker before the new owner sends a task, so the two never dispatch into the same slots: no `busy`.
 */
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../../src/protocol/messages.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';

describe('one owner at a time (issue 14 point 6)', () => {
  let m: TestManager | undefined;
  const procs: WorkerProcess[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    await m?.stop();
    m = undefined;
  });

  it("the previous owner's connection is closed when a new manager takes the worker; zero busy refusals", async () => {
    const w = await spawnWorker('echo');
    procs.push(w);
    // The stale owner: welcomed, every slot filled with long tasks, then it stops paying attention.
    const stale = new WebSocket(w.endpoint);
    let closedWith: number | undefined;
    let assigned = 0;
    stale.on('close', (code) => (closedWith = code));
    stale.on('message', (raw: Buffer) => {
      const msg = JSON.parse(raw.toString()) as { type: string; maxConcurrency?: number };
      if (msg.type !== 'hello') return;
      stale.send(
        JSON.stringify({
          type: 'welcome',
          protocolVersion: PROTOCOL_VERSION,
          managerId: 'stale',
          heartbeatIntervalMs: 60_000,
        }),
      );
      for (let i = 0; i < msg.maxConcurrency!; i++) {
        assigned += 1;
        stale.send(
          JSON.stringify({
            type: 'task.assign',
            taskId: `stale-${i}`,
            attempt: 1,
            leaseToken: `lease-${i}`,
            capability: 'sleep',
            payload: { ms: 30_000 },
            deadline: Date.now() + 60_000,
            timeoutMs: 60_000,
          }),
        );
      }
    });
    await waitFor(
      async () => {
        const h = (await (await fetch(`http://127.0.0.1:${w.port}/health`)).json()) as {
          load: { inFlight: number };
        };
        return assigned > 0 && h.load.inFlight === assigned;
      },
      10_000,
      'the stale owner fills every slot',
    );

    m = await startManager();
    await m.manager.registerWorker({ endpoint: w.endpoint });
    const tasks = await Promise.all(Array.from({ length: 16 }, (_, i) => m!.client.execute('echo', { i })));
    for (const t of tasks) {
      expect(t.state).toBe('succeeded');
      expect(t.attempts.filter((a) => a.error?.code === 'busy')).toEqual([]);
    }
    await waitFor(() => closedWith !== undefined, 5000, 'the stale connection closed');
    expect(closedWith).toBe(4409);
  }, 60_000);
});
