/** Memory-only behaviour: exact times with a fake clock, the finished-task LRU, and boundedness at scale. */
import { describe, expect, it } from 'vitest';
import { MemoryTaskQueue } from '../../../../src/manager/queue/memory-task-queue.js';
import type { TaskQueueOptions } from '../../../../src/manager/queue/task-queue.js';
import { FleetError } from '../../../../src/protocol/errors.js';

function setup(overrides: Partial<TaskQueueOptions> = {}) {
  const clock = { t: 1_000_000 };
  const queue = new MemoryTaskQueue({
    maxQueued: 1000,
    retainFinished: 1000,
    defaultMaxAttempts: 3,
    timeoutMs: () => 30_000,
    backoffMs: 200,
    maxBackoffMs: 1000,
    now: () => clock.t,
    random: () => 1,
    ...overrides,
  });
  return { queue, clock };
}

const retryable = { code: 'worker_lost', message: 'gone', retryable: true };

describe('MemoryTaskQueue (fake clock)', () => {
  it('says whether anything waits: ready, in backoff and pinned to a busy worker all count', async () => {
    const { queue, clock } = setup();
    expect(queue.hasQueued()).toBe(false);
    const { task } = await queue.submit({ capability: 'c' });
    expect(queue.hasQueued()).toBe(true);
    const claimed = await queue.claim(['c'], 'w');
    expect(queue.hasQueued()).toBe(false);
    // In backoff: the dispatcher must still pump (and set its wake-up) for it.
    await queue.fail(task.id, claimed!.leaseToken!, retryable, { outcome: 'failed' });
    expect(queue.hasQueued()).toBe(true);
    clock.t += 10_000;
    const again = await queue.claim(['c'], 'w');
    await queue.complete(task.id, again!.leaseToken!, 'ok');
    expect(queue.hasQueued()).toBe(false);
    // A session's second task waits for its worker only: still queued, although no other worker may take it.
    const first = await queue.submit({ capability: 'c', sessionId: 's' });
    const held = await queue.claim(['c'], 'w1');
    expect(held?.id).toBe(first.task.id);
    await queue.submit({ capability: 'c', sessionId: 's' });
    expect(await queue.claim(['c'], 'w2')).toBeUndefined();
    expect(queue.hasQueued()).toBe(true);
    await queue.cancel((await queue.claim(['c'], 'w1'))!.id);
    expect(queue.hasQueued()).toBe(false);
  });

  it('holds a failed task back for exactly the backoff, doubling per attempt up to the cap', async () => {
    const { queue, clock } = setup({ defaultMaxAttempts: 5 });
    const { task } = await queue.submit({ capability: 'c' });
    const expectedDelays = [200, 400, 800, 1000];
    for (const delay of expectedDelays) {
      const c = await queue.claim(['c'], 'w');
      expect(c?.id).toBe(task.id);
      const failed = await queue.fail(task.id, c?.leaseToken as string, retryable, {
        outcome: 'failed',
      });
      expect(failed.notBefore).toBe(clock.t + delay);
      expect(await queue.nextReadyAt()).toBe(clock.t + delay);
      clock.t += delay - 1;
      expect(await queue.claim(['c'], 'w')).toBeUndefined();
      clock.t += 1;
    }
    const last = await queue.claim(['c'], 'w');
    expect(last?.attempt).toBe(5);
    expect(await queue.nextReadyAt()).toBeUndefined();
  });

  it('uses the injected random for jitter', async () => {
    const { queue, clock } = setup({ random: () => 0 });
    await queue.submit({ id: 't', capability: 'c' });
    const c = await queue.claim(['c'], 'w');
    const failed = await queue.fail('t', c?.leaseToken as string, retryable, { outcome: 'worker_lost' });
    expect(failed.notBefore).toBe(clock.t + 100);
  });

  it('lets a due retry compete on priority and queue order with fresh tasks', async () => {
    const { queue, clock } = setup();
    await queue.submit({ id: 'old', capability: 'c', priority: 1 });
    const c = await queue.claim(['c'], 'w');
    await queue.fail('old', c?.leaseToken as string, retryable, { outcome: 'worker_lost' });
    await queue.submit({ id: 'new-low', capability: 'c', priority: 0 });
    await queue.submit({ id: 'new-same', capability: 'c', priority: 1 });
    clock.t += 200;
    const order = [];
    for (let t = await queue.claim(['c'], 'w'); t; t = await queue.claim(['c'], 'w')) order.push(t.id);
    // The retry re-entered the queue (at fail time) before new-same was submitted: equal priority, it goes first.
    expect(order).toEqual(['old', 'new-same', 'new-low']);
  });

  it('records timestamps from the injected clock', async () => {
    const { queue, clock } = setup();
    const { task } = await queue.submit({ id: 't', capability: 'c' });
    expect(task).toMatchObject({ createdAt: clock.t, updatedAt: clock.t, notBefore: clock.t });
    clock.t += 50;
    const c = await queue.claim(['c'], 'w');
    expect(c).toMatchObject({ startedAt: clock.t, updatedAt: clock.t });
    expect(c?.attempts[0]?.startedAt).toBe(clock.t);
    clock.t += 70;
    const done = await queue.complete('t', c?.leaseToken as string, null);
    expect(done.finishedAt).toBe(clock.t);
    expect(done.attempts[0]?.finishedAt).toBe(clock.t);
  });

  it('hands out copies: changing a returned record changes nothing inside', async () => {
    const { queue } = setup();
    const { task } = await queue.submit({ id: 't', capability: 'c' });
    task.state = 'succeeded';
    task.attempts.push({ attempt: 9, workerId: 'x', leaseToken: 'y', startedAt: 0 });
    const got = await queue.get('t');
    expect(got).toMatchObject({ state: 'queued', attempts: [] });
  });

  it('counts a task in backoff in depth but not as ready', async () => {
    const { queue } = setup();
    await queue.submit({ id: 't', capability: 'c' });
    const c = await queue.claim(['c'], 'w');
    expect(await queue.depth('c')).toBe(0);
    await queue.fail('t', c?.leaseToken as string, retryable, { outcome: 'worker_lost' });
    expect(await queue.depth('c')).toBe(1);
    expect(await queue.depth()).toBe(1);
    expect(await queue.claim(['c'], 'w')).toBeUndefined();
  });

  it('rejects invalid options with config_invalid naming the option', () => {
    expect(() => setup({ maxQueued: 0 })).toThrow(/maxQueued/);
    expect(() => setup({ backoffMs: -1 })).toThrow(FleetError);
  });
});

describe('MemoryTaskQueue finished-task retention', () => {
  it('keeps only the last retainFinished final tasks, least recently used out first', async () => {
    const { queue } = setup({ retainFinished: 3 });
    for (const id of ['a', 'b', 'c', 'd']) {
      await queue.submit({ id, capability: 'x', idempotencyKey: `key-${id}` });
      const c = await queue.claim(['x'], 'w');
      await queue.complete(id, c?.leaseToken as string, id);
      if (id === 'c') expect(await queue.get('b')).toBeDefined(); // touch b: now a is the oldest
    }
    expect(await queue.get('a')).toBeUndefined();
    expect((await queue.list()).map((t) => t.id).sort()).toEqual(['b', 'c', 'd']);
    // The evicted task's idempotency key is forgotten with it: a new task is created.
    const again = await queue.submit({ capability: 'x', idempotencyKey: 'key-a' });
    expect(again.created).toBe(true);
    expect((await queue.submit({ capability: 'x', idempotencyKey: 'key-d' })).created).toBe(false);
  });

  it('with retainFinished 0 drops a task as soon as it ends', async () => {
    const { queue } = setup({ retainFinished: 0 });
    await queue.submit({ id: 't', capability: 'x' });
    const c = await queue.claim(['x'], 'w');
    const done = await queue.complete('t', c?.leaseToken as string, 1);
    expect(done.state).toBe('succeeded');
    expect(await queue.get('t')).toBeUndefined();
    await expect(queue.complete('t', c?.leaseToken as string, 2)).rejects.toMatchObject({
      code: 'not_found',
    });
  });

  it('stays bounded over 100 000 tasks: only live tasks plus retainFinished are kept', async () => {
    const { queue } = setup({ maxQueued: 100_000, retainFinished: 1000 });
    const caps = ['a', 'b', 'c', 'd'];
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      await queue.submit({
        id: `t${i}`,
        capability: caps[i % 4] as string,
        priority: i % 3,
        idempotencyKey: `k${i}`,
      });
    }
    expect(await queue.depth()).toBe(n);
    await expect(queue.submit({ capability: 'a' })).rejects.toMatchObject({ code: 'queue_full' });
    let last = 3; // priorities 2,1,0 come out in that order
    for (let i = 0; i < n; i++) {
      const c = await queue.claim(caps, 'w');
      if (!c) throw new Error(`claim ${i} returned nothing`);
      if (c.priority > last) throw new Error(`priority ${c.priority} came out after ${last}`);
      last = c.priority;
      await queue.complete(c.id, c.leaseToken as string, i);
    }
    expect(await queue.depth()).toBe(0);
    expect(await queue.list()).toHaveLength(1000);
    expect(await queue.get('t0')).toBeUndefined();
    // The idempotency index shrank with the retained set: an old key makes a new task.
    expect((await queue.submit({ capability: 'a', idempotencyKey: 'k0' })).created).toBe(true);
  }, 120_000);
});
