import { MemoryTaskQueue } from '../../src/manager/queue/memory-task-queue.js';
import { describeTaskQueueContract } from './task-queue.contract.js';
import { testQueueOptions } from '../helpers/queue-options.js';

describeTaskQueueContract(
  'memory',
  async (options) =>
    new MemoryTaskQueue(testQueueOptions({ maxQueued: 10_000, retainFinished: 10_000, ...options })),
);
