/**
 * Upgrading (docs/distributed.md: Upgrading): the previous store kept Fleet task records beside BullMQ's
 * jobs; this one reads tasks from the jobs alone and would silently not see those. A manager refuses to
 * start on a Redis that still holds them, naming the prefix and the documented way to clear it, and writes
 * nothing; once the prefix is cleared it starts.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { RedisTaskQueue } from '../../../src/manager/queue/redis/task-queue.js';
import { createManagerStores } from '../../../src/manager/store-factory.js';
import { FleetError } from '../../../src/protocol/errors.js';
import { testQueueOptions } from '../../helpers/queue-options.js';
import { countKeys, deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../../helpers/redis.js';

let redis: TestRedis;
let raw: Redis;
const prefixes: string[] = [];

beforeAll(async () => {
  redis = await getTestRedis();
  raw = new Redis(redis.url);
});
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(redis.url, prefix);
  raw.disconnect();
  await redis.close();
});

/** What a manager of the previous version leaves in Redis: a task record and its indexes. */
async function oldLayout(): Promise<string> {
  const prefix = uniquePrefix('fleet-old');
  prefixes.push(prefix);
  await raw.hset(`${prefix}:fleet:task:t1`, 'r', '1', 'j', '{}', 's', 'queued', 'q', '1');
  await raw.zadd(`${prefix}:fleet:all`, 1, 't1');
  await raw.set(`${prefix}:fleet:seq`, '1');
  return prefix;
}

const configFor = (prefix: string) =>
  parseConfig({ manager: { log_level: 'silent', store: 'redis', redis: { url: redis.url, prefix } } });

it('refuses to start a manager on the old layout, with the prefix and the one-line way to clear it', async () => {
  const prefix = await oldLayout();
  const err = await createManagerStores(configFor(prefix)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FleetError);
  expect((err as FleetError).code).toBe('config_invalid');
  expect((err as FleetError).message).toContain('previous Fleet store layout');
  expect((err as FleetError).message).toContain(`redis-cli --scan --pattern '${prefix}:*'`);
  expect(await countKeys(redis.url, prefix)).toBe(3); // nothing written beside them

  // A queue opened directly refuses every operation the same way.
  const q = new RedisTaskQueue({ ...testQueueOptions(), redis: { url: redis.url, prefix } });
  try {
    const submit = await q.submit({ capability: 'echo' }).catch((e: unknown) => e);
    expect(submit).toMatchObject({ code: 'config_invalid' });
    expect(await countKeys(redis.url, prefix)).toBe(3);
  } finally {
    await q.close();
  }

  // Cleared (what the documented redis-cli line does), it starts.
  await deleteKeys(redis.url, prefix);
  const stores = await createManagerStores(configFor(prefix));
  try {
    const { task } = await stores.deps.queue!.submit({ capability: 'echo' });
    expect(await stores.deps.queue!.get(task.id)).toMatchObject({ state: 'queued' });
  } finally {
    await stores.deps.queue!.close();
    await stores.close();
  }
});
