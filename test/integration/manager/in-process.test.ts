/**
 * The whole manager in one process, no ports: registry → dispatcher → worker runtime → result, with the workers
 * linked through MockWebSocketWorkerInterface. The same WorkerManager, discovery, dispatcher and WorkerRuntime
 * run as in production; only the socket is an in-memory pair.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import {
  MockWebSocketWorkerInterface,
  type WorkerSideTransport,
} from '../../../src/manager/connect/worker-interface.js';
import { WorkerManager } from '../../../src/manager/manager.js';
import { WorkerRuntime } from '../../../src/workers/common/worker-runtime.js';
import { echoRuntime } from '../../helpers/echo-runtime.js';
import { waitFor } from '../../helpers/processes.js';

interface InProcessFleet {
  manager: WorkerManager;
  workers: MockWebSocketWorkerInterface;
  /** endpoint → the worker runtime behind it, and the worker side of its current link */
  runtimes: Map<string, { runtime: WorkerRuntime; link?: WorkerSideTransport }>;
  endpoints: string[];
}

const fleets: InProcessFleet[] = [];
afterEach(async () => {
  for (const f of fleets.splice(0)) {
    await f.manager.stop();
    for (const { runtime } of f.runtimes.values()) await runtime.closeConnections(1001, 'test over');
  }
});

async function inProcessFleet(n: number, maxConcurrency = 2): Promise<InProcessFleet> {
  const runtimes: InProcessFleet['runtimes'] = new Map();
  const config = parseConfig({
    manager: {
      log_level: 'silent',
      health: { heartbeat_interval: '100ms', missed_heartbeats: 5, interval: '2s', timeout: '1s' },
      retries: { backoff: '10ms' },
    },
  });
  const workers = new MockWebSocketWorkerInterface(
    { managerId: 'in-process', heartbeatIntervalMs: 100 },
    (endpoint, workerSide) => {
      const entry = runtimes.get(endpoint);
      if (!entry) throw new Error(`no in-process worker at ${endpoint}`);
      entry.link = workerSide;
      entry.runtime.attach(workerSide);
    },
  );
  const manager = new WorkerManager(config, { workerInterface: workers, logger: pino({ level: 'silent' }) });
  const endpoints: string[] = [];
  for (let i = 0; i < n; i++) {
    const runtime = echoRuntime(`echo-in-process-${i}`, maxConcurrency);
    const endpoint = `ws://echo-${i}.in-process:1/ws`;
    runtimes.set(endpoint, { runtime });
    endpoints.push(endpoint);
  }
  await manager.start();
  for (const endpoint of endpoints) {
    const r = await manager.registerWorker({ endpoint });
    expect(r.error).toBeUndefined();
  }
  const fleet = { manager, workers, runtimes, endpoints };
  fleets.push(fleet);
  return fleet;
}

describe('the whole manager in process, through MockWebSocketWorkerInterface', () => {
  it('runs tasks end to end on both workers, every assignment sent through the interface', async () => {
    const { manager, workers } = await inProcessFleet(2);
    const send = vi.spyOn(workers, 'sendMessage');
    const done = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        manager.executeTask({ capability: 'sleep', payload: { ms: 20 + i } }),
      ),
    );
    expect(done.every((t) => t.state === 'succeeded')).toBe(true);
    expect(new Set(done.map((t) => t.attempts[0]!.workerId)).size).toBe(2);
    const assigns = send.mock.calls.filter(([, m]) => m.type === 'task.assign');
    expect(assigns.map(([, m]) => (m as { taskId: string }).taskId).sort()).toEqual(
      done.map((t) => t.id).sort(),
    );
    const echoed = await manager.executeTask({ capability: 'echo', payload: { hello: 'fleet' } });
    expect(echoed.output).toEqual({ hello: 'fleet' });
    // Registry view: both online, nothing left in flight (once the pump's last claims came back empty).
    await waitFor(
      () => manager.inFlight === 0 && manager.localWorkers().every((w) => w.inFlight === 0),
      2000,
      'idle',
    );
    expect(manager.localWorkers().map((w) => [w.status, w.inFlight])).toEqual([
      ['online', 0],
      ['online', 0],
    ]);
    expect(manager.loadByType().get('echo')).toMatchObject({ capacity: 4, inFlight: 0 });
  });

  it('a worker whose link drops under a task keeps it: discovery redials, the worker reports it, the manager adopts it (one run)', async () => {
    const { manager, runtimes, endpoints } = await inProcessFleet(2, 1);
    const { task } = await manager.submit({ capability: 'sleep', payload: { ms: 2000 } });
    await waitFor(async () => (await manager.getTask(task.id)).state === 'running', 5000, 'running');
    // Held tasks wait only for a worker that has beaten on its connection (100 ms here).
    await new Promise((r) => setTimeout(r, 300));
    const ranOn = (await manager.getTask(task.id)).workerId;
    const endpoint = endpoints.find((e) => manager.workerAt(e)?.workerId === ranOn)!;
    // 1006: the link died without a closing handshake; the worker itself lives on.
    await runtimes.get(endpoint)!.link!.close(1006, 'gone');
    const done = await manager.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe('succeeded');
    expect(done.attempts.map((a) => [a.outcome, a.workerId])).toEqual([['succeeded', ranOn]]);
    await waitFor(() => manager.worker(ranOn!)?.status === 'online', 5000, 'rejoined');
    expect((await manager.executeTask({ capability: 'echo', payload: {} })).state).toBe('succeeded');
  });

  it('drain, cancel and resume reach the worker through the interface', async () => {
    const { manager, workers } = await inProcessFleet(1, 2);
    const send = vi.spyOn(workers, 'sendMessage');
    const workerId = manager.localWorkers()[0]!.workerId;
    const { task } = await manager.submit({ capability: 'sleep', payload: { ms: 5000 } });
    await waitFor(async () => (await manager.getTask(task.id)).state === 'running', 5000, 'running');
    const cancelled = await manager.cancelTask(task.id, 'test');
    expect(cancelled.state).toBe('cancelled');
    await waitFor(() => manager.inFlight === 0, 5000, 'slot freed by the worker');
    await manager.drainWorker(workerId);
    expect(manager.worker(workerId)?.draining).toBe(true);
    const waiting = await manager.submit({ capability: 'echo', payload: { n: 1 } });
    await new Promise((r) => setTimeout(r, 200));
    expect((await manager.getTask(waiting.task.id)).state).toBe('queued');
    await manager.resumeWorker(workerId);
    expect((await manager.waitForTask(waiting.task.id, { timeoutMs: 5000 })).state).toBe('succeeded');
    expect(send.mock.calls.map(([, m]) => m.type)).toEqual(
      expect.arrayContaining(['task.assign', 'task.cancel', 'drain', 'resume']),
    );
  });

  it('sendMessage to a worker without an open connection is worker_lost, typed', async () => {
    const { workers } = await inProcessFleet(1);
    await expect(workers.sendMessage('nobody', { type: 'resume' })).rejects.toMatchObject({
      code: 'worker_lost',
    });
  });
});
