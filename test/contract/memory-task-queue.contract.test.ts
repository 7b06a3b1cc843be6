import { MemoryTaskQueue } from '../../src/manager/queue/memory-task-queue.js';
import { describeTaskQueueContract } from './task-queue.contract.js';

describeTaskQueueContract(
  'memory',
  async (options) =>
    new MemoryTaskQueue({
      maxQueued: 10_000,
      retainFinished: 10_000,
      defaultMaxAttempts: 3,
      timeoutMs: () => 30_000,
      backoffMs: 20,
      maxBackoffMs: 40,
      ...options,
    }),
);
