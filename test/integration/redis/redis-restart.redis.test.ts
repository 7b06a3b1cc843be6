/**
 * A Redis restart in the middle of a run loses no accepted task: commands issued while Redis is down wait
 * in the client's offline queue and run after the reconnect, and what was accepted before is on disk
 * (append-only file, as a production Redis for Fleet should be configured). Uses a private redis-server on
 * its own loopback port, never the shared one.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisTaskQueue } from '../../../src/manager/queue/redis/task-queue.js';
import { startPrivateRedis, type PrivateRedis } from '../../helpers/redis.js';
import { testQueueOptions } from '../../helpers/queue-options.js';

let server: PrivateRedis;

beforeAll(async () => {
  server = await startPrivateRedis({ persistent: true });
});
afterAll(async () => {
  await server?.close();
});

it('keeps every accepted task through a redis-server restart', async () => {
  const q = new RedisTaskQueue({
    ...testQueueOptions(),
    redis: { url: server.url, prefix: 'fleet-restart', commandTimeoutMs: 20_000 },
    lockDurationMs: 5_000,
  });
  try {
    const accepted = new Set<string>();
    for (let i = 0; i < 20; i++)
      accepted.add((await q.submit({ capability: 'echo', payload: { i } })).task.id);
    const finished = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const t = await q.claim(['echo'], 'w');
      if (!t) throw new Error('expected a task before the restart');
      await q.complete(t.id, t.leaseToken ?? '', i);
      finished.add(t.id);
    }
    const inFlight = await q.claim(['echo'], 'w');
    if (!inFlight) throw new Error('expected a task in flight across the restart');

    await server.stop();
    // Submitted while Redis is down: these wait for the reconnect instead of failing.
    const during = Array.from({ length: 10 }, (_, i) =>
      q.submit({ capability: 'echo', payload: { during: i } }),
    );
    await new Promise((r) => setTimeout(r, 300));
    await server.start();
    for (const r of await Promise.all(during)) accepted.add(r.task.id);
    expect(accepted.size).toBe(30);

    // The task in flight during the restart still completes with its lease.
    await q.complete(inFlight.id, inFlight.leaseToken ?? '', 'across the restart');
    finished.add(inFlight.id);
    for (let t = await q.claim(['echo'], 'w'); t; t = await q.claim(['echo'], 'w')) {
      await q.complete(t.id, t.leaseToken ?? '', 'after');
      finished.add(t.id);
    }
    expect(finished).toEqual(accepted);
    const succeeded = await q.list({ state: 'succeeded' });
    expect(succeeded).toHaveLength(30);
    expect(await q.depth()).toBe(0);
  } finally {
    await q.close();
  }
});
