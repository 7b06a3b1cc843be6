/**
 * What comes back from Redis is checked, not cast: a task record corrupted in Redis (not JSON, or JSON of the
 * wrong shape) is a typed `store_corrupt` error naming its key and an alert, never a crash or a wrong answer.
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { WorkerManager } from '../../../src/manager/manager.js';
import { RedisTaskQueue } from '../../../src/manager/queue/redis/task-queue.js';
import { RedisWorkerDirectory } from '../../../src/manager/registry/redis-worker-directory.js';
import { FleetError } from '../../../src/protocol/errors.js';
import { deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../../helpers/redis.js';
import { testQueueOptions } from '../../helpers/queue-options.js';

let redis: TestRedis;
let raw: Redis;
const prefixes = new Set<string>();
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await getTestRedis();
  raw = new Redis(redis.url);
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(redis.url, prefix);
  raw.disconnect();
  await redis.close();
});

function queue(): { q: RedisTaskQueue; taskKey: (id: string) => string } {
  const prefix = uniquePrefix();
  prefixes.add(prefix);
  const q = new RedisTaskQueue({ ...testQueueOptions(), redis: { url: redis.url, prefix } });
  cleanups.push(() => q.close());
  // The job is the record: its `data` field holds the task as written at submit.
  return { q, taskKey: (id) => `${prefix}:cap-echo:t_${id}` };
}

async function expectCorrupt(p: Promise<unknown>, key: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FleetError);
  expect(err).toMatchObject({ code: 'store_corrupt', details: { key } });
}

describe('records read back from Redis are validated', () => {
  it('a record that is not JSON, or not a task, is store_corrupt on read and left out of lists, reported each time', async () => {
    const { q, taskKey } = queue();
    await q.ready();
    const reported: FleetError[] = [];
    q.onCorruptRecord((e) => reported.push(e));
    const good = (await q.submit({ capability: 'echo', payload: { n: 1 } })).task;
    const garbled = (await q.submit({ capability: 'echo' })).task;
    const wrongShape = (await q.submit({ capability: 'echo' })).task;
    await raw.hset(taskKey(garbled.id), 'data', '{"id": "half a rec');
    // Valid JSON that is no task: a state this version does not know and no attempts.
    await raw.hset(
      taskKey(wrongShape.id),
      'data',
      JSON.stringify({ ...wrongShape, state: 'exploded', attempts: 3 }),
    );

    await expectCorrupt(q.get(garbled.id), taskKey(garbled.id));
    await expectCorrupt(q.get(wrongShape.id), taskKey(wrongShape.id));
    await expectCorrupt(q.cancel(wrongShape.id, 'x'), taskKey(wrongShape.id));
    expect(reported.map((e) => e.code)).toEqual(['store_corrupt', 'store_corrupt', 'store_corrupt']);
    expect(reported[1]!.message).toMatch(/state/);

    const listed = await q.list({});
    expect(listed.map((t) => t.id)).toEqual([good.id]);
    expect(reported).toHaveLength(5);
    // The good record still reads, and a record with fields this version does not know keeps them.
    expect(await q.get(good.id)).toMatchObject({ id: good.id, payload: { n: 1 } });
    await raw.hset(taskKey(good.id), 'data', JSON.stringify({ ...good, fromTheFuture: 1 }));
    expect(await q.get(good.id)).toMatchObject({ id: good.id, fromTheFuture: 1 });
  });

  it('the manager answers the typed error and raises a store_corrupt alert', async () => {
    const { q, taskKey } = queue();
    const manager = new WorkerManager(parseConfig({ manager: { log_level: 'silent' } }), {
      queue: q,
      logger: pino({ level: 'silent' }),
    });
    await manager.ready();
    const { task } = await manager.submit({ capability: 'echo' });
    await raw.hset(taskKey(task.id), 'data', 'null');
    await expectCorrupt(manager.getTask(task.id), taskKey(task.id));
    expect(manager.operatorEvents.activeAlerts()).toEqual([
      expect.objectContaining({
        kind: 'store_corrupt',
        key: `store_corrupt:${taskKey(task.id)}`,
        level: 'error',
      }),
    ]);
    expect(await manager.listTasks()).toEqual([]);
  });

  it('a corrupt worker record is left out of the fleet view; a corrupt endpoint entry reads as nothing known', async () => {
    const prefix = uniquePrefix();
    prefixes.add(prefix);
    const dir = new RedisWorkerDirectory({ redis: { url: redis.url, prefix } });
    cleanups.push(() => dir.close());
    const record = (workerId: string) => ({
      workerId,
      workerType: 'echo',
      endpoint: `ws://127.0.0.1:1/${workerId}`,
      port: 1,
      status: 'online' as const,
      capabilities: ['echo'],
      currentLoad: 0,
      inFlight: 0,
      maxConcurrency: 2,
      lastHeartbeat: Date.now(),
    });
    await dir.publish(record('w-good'), 60_000);
    await dir.publish(record('w-bad'), 60_000);
    await raw.set(
      `${prefix}:dir:worker:w-bad`,
      JSON.stringify({ ...record('w-bad'), status: 'sideways' }),
      'PX',
      60_000,
    );
    expect((await dir.list()).map((w) => w.workerId)).toEqual(['w-good']);
    await raw.set(`${prefix}:dir:worker:w-bad`, '{{{', 'PX', 60_000);
    expect((await dir.list()).map((w) => w.workerId)).toEqual(['w-good']);

    await dir.addEndpoint('ws://127.0.0.1:9/ws', { workerType: 'echo', source: 'config' });
    await raw.hset(`${prefix}:dir:endpoints`, 'ws://127.0.0.1:9/ws', 'not json');
    expect(await dir.endpointMeta()).toEqual(new Map([['ws://127.0.0.1:9/ws', {}]]));
    await dir.addEndpoint('ws://127.0.0.1:9/ws', { source: 'announce' });
    expect(await dir.endpointMeta()).toEqual(new Map([['ws://127.0.0.1:9/ws', { source: 'announce' }]]));
  });
});
