/**
 * The TaskQueue contract, unchanged, against the Redis/BullMQ store. Each queue gets its own key prefix
 * (a queue's bound and depth are per prefix) and its keys are deleted when the test closes it.
 */
import { afterAll, beforeAll } from 'vitest';
import { RedisTaskQueue } from '../../src/manager/queue/redis/task-queue.js';
import type { TaskQueue } from '../../src/manager/queue/task-queue.js';
import { deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';
import { describeTaskQueueContract } from './task-queue.contract.js';
import { testQueueOptions } from '../helpers/queue-options.js';

let redis: TestRedis;
const prefixes = new Map<TaskQueue, string>();

beforeAll(async () => {
  redis = await getTestRedis();
});
afterAll(async () => {
  for (const prefix of prefixes.values()) await deleteKeys(redis.url, prefix);
  await redis.close();
});

describeTaskQueueContract(
  'redis',
  async (options) => {
    const prefix = uniquePrefix();
    const queue = new RedisTaskQueue({
      ...testQueueOptions({ maxQueued: 10_000, retainFinished: 10_000, ...options }),
      redis: { url: redis.url, prefix },
      lockDurationMs: 5_000,
    });
    prefixes.set(queue, prefix);
    return queue;
  },
  async (queue) => {
    const prefix = prefixes.get(queue);
    if (prefix) await deleteKeys(redis.url, prefix);
    prefixes.delete(queue);
  },
);
