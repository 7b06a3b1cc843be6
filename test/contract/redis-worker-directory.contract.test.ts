/** The WorkerDirectory contract against Redis: one key prefix per directory, deleted after each test. */
import { afterAll, beforeAll } from 'vitest';
import { RedisWorkerDirectory } from '../../src/manager/registry/redis-worker-directory.js';
import type { WorkerDirectory } from '../../src/manager/registry/worker-directory.js';
import { deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';
import { describeWorkerDirectoryContract } from './worker-directory.contract.js';

let redis: TestRedis;
const prefixes = new Map<WorkerDirectory, string>();

beforeAll(async () => {
  redis = await getTestRedis();
});
afterAll(async () => {
  for (const prefix of prefixes.values()) await deleteKeys(redis.url, prefix);
  await redis.close();
});

describeWorkerDirectoryContract(
  'redis',
  async () => {
    const prefix = uniquePrefix();
    const directory = new RedisWorkerDirectory({ redis: { url: redis.url, prefix } });
    prefixes.set(directory, prefix);
    return { directory, elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };
  },
  async (directory) => {
    const prefix = prefixes.get(directory);
    if (prefix) await deleteKeys(redis.url, prefix);
    prefixes.delete(directory);
  },
);
