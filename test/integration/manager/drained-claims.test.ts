/**
 * The dispatcher does not probe a queue it found empty when all that happened since is a freed slot: a
 * result used to cost a claim that found nothing (on Redis, two round trips per task). Anything that can
 * bring work — a submission, a retry coming due, a worker joining — still claims.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { MockWebSocketWorkerInterface } from '../../../src/manager/connect/worker-interface.js';
import { WorkerManager } from '../../../src/manager/manager.js';
import { MemoryTaskQueue } from '../../../src/manager/queue/memory-task-queue.js';
import type { ClaimOptions } from '../../../src/manager/queue/task-queue.js';
import type { TaskRecord } from '../../../src/manager/queue/task.js';
import type { WorkerRuntime } from '../../../src/workers/common/worker-runtime.js';
import { echoRuntime } from '../../helpers/echo-runtime.js';
import { testQueueOptions } from '../../helpers/queue-options.js';

class CountingQueue extends MemoryTaskQueue {
  found = 0;
  empty = 0;
  override async claim(
    capabilities: readonly string[],
    workerId: string,
    options?: ClaimOptions,
  ): Promise<TaskRecord | undefined> {
    const t = await super.claim(capabilities, workerId, options);
    if (t) this.found++;
    else this.empty++;
    return t;
  }
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function fleet(workers: number): Promise<{ manager: WorkerManager; queue: CountingQueue }> {
  const config = parseConfig({
    manager: {
      log_level: 'silent',
      health: { heartbeat_interval: '100ms', missed_heartbeats: 5, interval: '2s', timeout: '1s' },
    },
  });
  const queue = new CountingQueue(testQueueOptions({ backoffMs: 50, maxBackoffMs: 50 }));
  const runtimes = new Map<string, WorkerRuntime>();
  const workerInterface = new MockWebSocketWorkerInterface(
    { managerId: 'drained', heartbeatIntervalMs: 100 },
    (endpoint, workerSide) => runtimes.get(endpoint)!.attach(workerSide),
  );
  const manager = new WorkerManager(config, { workerInterface, queue, logger: pino({ level: 'silent' }) });
  for (let i = 0; i < workers; i++) {
    runtimes.set(`ws://echo-${i}.drained:1/ws`, echoRuntime(`echo-drained-${i}`, 2));
  }
  await manager.start();
  stops.push(async () => {
    await manager.stop();
    for (const r of runtimes.values()) await r.closeConnections(1001, 'test over');
  });
  for (const endpoint of runtimes.keys())
    expect((await manager.registerWorker({ endpoint })).error).toBeUndefined();
  return { manager, queue };
}

describe('claims after a freed slot', () => {
  it('are not made while the queue was found empty and nothing was announced since', async () => {
    const { manager, queue } = await fleet(2);
    for (let i = 0; i < 30; i++) {
      const { task } = await manager.submitAndWait({ capability: 'echo', payload: { i } });
      expect(task.state).toBe('succeeded');
    }
    expect(queue.found).toBe(30);
    // Before: about two empty claims per task (the probes after the submission's claim and after the
    // result, one per worker). Now a few, when a mark runs out.
    expect(queue.empty).toBeLessThanOrEqual(10);
  });

  it('still run a retry that comes due after the queue was found empty, and later submissions', async () => {
    const { manager, queue } = await fleet(1);
    const failing = await manager.submitAndWait({
      capability: 'fail',
      payload: { code: 'handler_error', retryable: true },
      maxAttempts: 3,
    });
    // Each retry waits out its backoff in the queue: only the wake timer can hand it out again.
    expect(failing.task).toMatchObject({ state: 'failed', attempt: 3 });
    const burst = await Promise.all(
      Array.from({ length: 6 }, (_, i) => manager.submitAndWait({ capability: 'echo', payload: { i } })),
    );
    expect(burst.every((r) => r.task.state === 'succeeded')).toBe(true);
    expect(queue.found).toBe(3 + 6);
  });
});
