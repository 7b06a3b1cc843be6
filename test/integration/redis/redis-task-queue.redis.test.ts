/**
 * Redis-only behaviour of the distributed store: several managers (queue instances with their own
 * connections) on one Redis, a manager dying with tasks in hand, lock renewal, graceful hand-back,
 * connection discipline and a clear failure when Redis is unreachable. Short lock durations keep it fast.
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobIdFor } from '../../../src/manager/queue/redis/keys.js';
import { RedisTaskQueue, type RedisTaskQueueOptions } from '../../../src/manager/queue/redis/task-queue.js';
import type { TaskEvent } from '../../../src/manager/queue/task-queue.js';
import type { TaskRecord } from '../../../src/manager/queue/task.js';
import { RedisWorkerDirectory } from '../../../src/manager/registry/redis-worker-directory.js';
import { FleetError } from '../../../src/protocol/errors.js';
import { RedisConnections } from '../../../src/store/redis-connection.js';
import { countKeys, deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../../helpers/redis.js';
import { testQueueOptions } from '../../helpers/queue-options.js';

let redis: TestRedis;
const prefixes = new Set<string>();
const open: RedisTaskQueue[] = [];

beforeAll(async () => {
  redis = await getTestRedis();
});
afterEach(async () => {
  for (const q of open.splice(0)) await q.close();
});
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(redis.url, prefix);
  await redis.close();
});

const newPrefix = (): string => {
  const prefix = uniquePrefix();
  prefixes.add(prefix);
  return prefix;
};

function manager(prefix: string, over: Partial<RedisTaskQueueOptions> = {}): RedisTaskQueue {
  const q = new RedisTaskQueue({
    ...testQueueOptions(),
    redis: { url: redis.url, prefix, clientName: `fleet-it-${prefix}` },
    lockDurationMs: 600,
    stalledIntervalMs: 150,
    ...over,
  });
  open.push(q);
  return q;
}

async function eventually<T>(check: () => Promise<T>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Redis task queue across managers', () => {
  it('shares records, claims and events between managers', async () => {
    const prefix = newPrefix();
    const a = manager(prefix);
    const b = manager(prefix);
    const seenByB: TaskEvent[] = [];
    b.subscribe((e) => seenByB.push(e));
    await b.ready();
    const { task } = await a.submit({ capability: 'echo', payload: { hello: 'world' }, priority: 3 });
    expect(await b.get(task.id)).toMatchObject({ id: task.id, state: 'queued', payload: { hello: 'world' } });
    expect((await b.list({ state: 'queued' })).map((t) => t.id)).toEqual([task.id]);
    const claimed = await b.claim(['echo'], 'w-b');
    expect(claimed).toMatchObject({ id: task.id, state: 'assigned', workerId: 'w-b' });
    expect(await a.claim(['echo'], 'w-a')).toBeUndefined();
    expect(await a.get(task.id)).toMatchObject({ state: 'assigned', leaseToken: claimed?.leaseToken });
    const done = await a.complete(task.id, claimed?.leaseToken ?? '', { ok: 1 });
    expect(done.state).toBe('succeeded');
    await eventually(async () =>
      expect(seenByB.map((e) => [e.kind, e.task.state])).toEqual([
        ['submitted', 'queued'],
        ['claimed', 'assigned'],
        ['finished', 'succeeded'],
      ]),
    );
  });

  it("announces another manager's claims late but in order, and a task that ended meanwhile from its final entry", async () => {
    const prefix = newPrefix();
    const a = manager(prefix);
    const b = manager(prefix);
    const seenByB: TaskEvent[] = [];
    b.subscribe((e) => seenByB.push(e));
    await b.ready();
    const quick = (await a.submit({ capability: 'echo' })).task;
    const slow = (await a.submit({ capability: 'echo' })).task;
    const first = await a.claim(['echo'], 'w-a');
    const second = await a.claim(['echo'], 'w-a');
    const leaseOf = (id: string) => [first, second].find((t) => t?.id === id)?.leaseToken ?? '';
    await a.markRunning(slow.id, leaseOf(slow.id));
    await a.complete(quick.id, leaseOf(quick.id), { ok: 1 });
    const kinds = (id: string) => seenByB.filter((e) => e.task.id === id).map((e) => [e.kind, e.task.state]);
    // Without a `claimed` when the claim's entry waited for the next one (the usual case), with one when
    // the machine was slow enough for the wait to run out first: either way in order.
    const withoutClaim = (id: string) => kinds(id).filter(([kind]) => kind !== 'claimed');
    await eventually(async () => {
      // The quick task's `active` entry is answered by its final record, its job not read for it.
      expect(withoutClaim(quick.id)).toEqual([
        ['submitted', 'queued'],
        ['finished', 'succeeded'],
      ]);
      // The slow task's job is read once its claim's entries have waited their time: running by then.
      expect(withoutClaim(slow.id)).toEqual([
        ['submitted', 'queued'],
        ['running', 'running'],
      ]);
    });
    for (const id of [quick.id, slow.id]) expect(kinds(id)[0]).toEqual(['submitted', 'queued']);
    await a.complete(slow.id, leaseOf(slow.id), { ok: 2 });
    await eventually(async () => expect(kinds(slow.id).at(-1)).toEqual(['finished', 'succeeded']));
  });

  it('claims without writing the job: its lock, pb and processedOn say who holds the task', async () => {
    const prefix = newPrefix();
    const a = manager(prefix);
    const b = manager(prefix);
    const { task } = await a.submit({ capability: 'echo' });
    const jobKey = `${prefix}:cap-echo:${jobIdFor(task.id)}`;
    const client = new Redis(redis.url);
    try {
      const before = await client.hget(jobKey, 'data');
      const claimed = await a.claim(['echo'], 'w-a');
      expect(await client.hget(jobKey, 'data')).toBe(before);
      expect(await client.hget(jobKey, 'pb')).toBe('w-a');
      // Another manager reads the assignment off the job.
      expect(await b.get(task.id)).toMatchObject({
        state: 'assigned',
        attempt: 1,
        workerId: 'w-a',
        leaseToken: claimed?.leaseToken,
        attempts: [{ attempt: 1, workerId: 'w-a', leaseToken: claimed?.leaseToken }],
      });
      // A running mark is written only when the task is still running a moment later…
      await a.markRunning(task.id, claimed?.leaseToken ?? '');
      expect(await client.hget(jobKey, 'progress')).toBeNull();
      await eventually(async () => expect((await b.get(task.id))?.state).toBe('running'));
      await a.complete(task.id, claimed?.leaseToken ?? '', 'ok');
      // …and never for a task that ended first.
      const { task: quick } = await a.submit({ capability: 'echo' });
      const q = await a.claim(['echo'], 'w-a');
      await a.markRunning(quick.id, q?.leaseToken ?? '');
      await a.complete(quick.id, q?.leaseToken ?? '', 'ok');
      await sleep(400);
      const entries = await client.xrange(`${prefix}:cap-echo:events`, '-', '+');
      const progressOf = entries.filter(([, f]) => f.includes('progress') && f.includes(jobIdFor(quick.id)));
      expect(progressOf).toEqual([]);
      expect(await b.get(quick.id)).toMatchObject({ state: 'succeeded', attempt: 1, workerId: 'w-a' });
    } finally {
      client.disconnect();
    }
  });

  it("tells the dispatcher of another manager's submission at once, and a claim here announces it before the claim", async () => {
    const prefix = newPrefix();
    const a = manager(prefix);
    const b = manager(prefix);
    const seenByB: TaskEvent[] = [];
    let work = 0;
    b.subscribe((e) => seenByB.push(e));
    b.onRemoteWork((n) => (work += n));
    await b.ready();
    const { task } = await a.submit({ capability: 'echo' });
    await eventually(async () => expect(work).toBe(1));
    // Its submission is held back (it is announced with the task's next entry, or a moment later)…
    expect(seenByB.filter((e) => e.task.id === task.id)).toEqual([]);
    const claimed = await b.claim(['echo'], 'w-b');
    expect(claimed?.id).toBe(task.id);
    // …and a claim here announces it first, from the record the claim got with the job.
    const kinds = () => seenByB.filter((e) => e.task.id === task.id).map((e) => [e.kind, e.late ?? false]);
    expect(kinds()).toEqual([
      ['submitted', true],
      ['claimed', false],
    ]);
    await b.complete(task.id, claimed?.leaseToken ?? '', 'ok');
    await sleep(400); // the submission's entry, read meanwhile, is not announced again
    expect(kinds()).toEqual([
      ['submitted', true],
      ['claimed', false],
      ['finished', false],
    ]);
    // A submission nobody here claims is announced a moment later all the same.
    const { task: other } = await a.submit({ capability: 'echo' });
    await eventually(async () =>
      expect(seenByB.filter((e) => e.task.id === other.id).map((e) => e.kind)).toEqual(['submitted']),
    );
    expect(work).toBe(2);
  });

  it('tells the dispatcher of a task another manager handed back on its way out', async () => {
    const prefix = newPrefix();
    const leaving = manager(prefix, { lockDurationMs: 60_000 });
    const staying = manager(prefix);
    let work = 0;
    staying.onRemoteWork((n) => (work += n));
    await staying.ready();
    const { task } = await leaving.submit({ capability: 'echo' });
    await eventually(async () => expect(work).toBe(1));
    expect((await leaving.claim(['echo'], 'w-leaving'))?.id).toBe(task.id);
    await leaving.close(); // graceful: the task goes back to wait at once
    await eventually(async () => expect(work).toBe(2));
    expect((await staying.claim(['echo'], 'w-staying'))?.id).toBe(task.id);
  });

  it('hands every task to exactly one manager when several claim at once', async () => {
    const prefix = newPrefix();
    const managers = [manager(prefix), manager(prefix), manager(prefix)];
    const ids = new Set<string>();
    for (let i = 0; i < 60; i++) {
      ids.add((await managers[i % 3]!.submit({ capability: i % 2 ? 'a' : 'b', priority: i % 5 })).task.id);
    }
    const claimed: TaskRecord[] = [];
    await Promise.all(
      managers.map(async (m, i) => {
        for (;;) {
          const t = await m.claim(['a', 'b'], `w${i}`);
          if (!t) break;
          claimed.push(t);
          await m.complete(t.id, t.leaseToken ?? '', i);
        }
      }),
    );
    expect(claimed).toHaveLength(60);
    expect(new Set(claimed.map((t) => t.id))).toEqual(ids);
    expect(await managers[0]!.depth()).toBe(0);
  });

  it('honours priority across the queues of several worker types', async () => {
    const prefix = newPrefix();
    const byType = (capability: string) =>
      capability.startsWith('py') ? 'python-sandbox' : 'browser-worker';
    const q = manager(prefix, { queueFor: byType });
    const low = (await q.submit({ capability: 'py-run', priority: 1 })).task;
    const high = (await q.submit({ capability: 'screenshot', priority: 9 })).task;
    const mid = (await q.submit({ capability: 'py-lint', priority: 5 })).task;
    const order: string[] = [];
    for (
      let t = await q.claim(['py-run', 'py-lint', 'screenshot'], 'w');
      t;
      t = await q.claim(['py-run', 'py-lint', 'screenshot'], 'w')
    ) {
      order.push(t.id);
    }
    expect(order).toEqual([high.id, mid.id, low.id]);
  });

  it('hands back a task of a capability the claimant does not serve, for one that does', async () => {
    const prefix = newPrefix();
    const q = manager(prefix, { queueFor: () => 'shared-type' });
    const other = (await q.submit({ capability: 'scrape', priority: 9 })).task;
    expect(await q.claim(['screenshot'], 'w1')).toBeUndefined();
    expect(await q.claim(['scrape'], 'w2')).toMatchObject({ id: other.id, attempt: 1 });
  });
});

describe('Redis task queue: session affinity across managers', () => {
  it("counts a capability's queued tasks in its own queue, shared with another capability, and in pinned queues", async () => {
    const q = manager(newPrefix(), { queueFor: (c) => (c === 'other' ? 'elsewhere' : 'shared') });
    await q.ready();
    const session = `s-${randomUUID()}`;
    await q.submit({ capability: 'a', sessionId: session });
    expect((await q.claim(['a'], 'w1'))?.sessionId).toBe(session);
    // Pinned to w1, in its own queue now.
    expect((await q.submit({ capability: 'a', sessionId: session })).task.sessionWorker).toBe('w1');
    for (const capability of ['a', 'a', 'b', 'other']) await q.submit({ capability });
    expect(await q.depth('a')).toBe(3);
    expect(await q.depth('b')).toBe(1);
    expect(await q.depth('other')).toBe(1);
    expect(await q.depth('nothing')).toBe(0);
    expect(await q.depth()).toBe(5);
  });

  it('binds a session once for all managers, and routes its tasks to that worker whichever manager took them', async () => {
    const prefix = newPrefix();
    const a = manager(prefix);
    const b = manager(prefix);
    // Subscribed, as every manager's dispatcher is: a task moved to a worker's queue elsewhere is announced.
    for (const q of [a, b]) q.subscribe(() => undefined);
    await Promise.all([a.ready(), b.ready()]);
    const session = `s-${randomUUID()}`;
    // Many first tasks of one session, claimed at once by a worker of each manager.
    for (let i = 0; i < 10; i++) await (i % 2 ? a : b).submit({ capability: 'py', sessionId: session });
    const first = await Promise.all([a.claim(['py'], 'wa'), b.claim(['py'], 'wb')]);
    const claimed = first.filter((t): t is TaskRecord => t !== undefined);
    expect(claimed.length).toBeGreaterThan(0);
    const binding = await b.sessionBinding(session);
    expect(binding?.lost).toBe(false);
    const home = binding!.workerId;
    for (const t of claimed) expect(t.workerId).toBe(home);
    const [homeQueue, otherQueue, other] = home === 'wa' ? [a, b, 'wb'] : [b, a, 'wa'];
    // Tasks submitted through either manager later wait for the home worker.
    const later = await otherQueue.submit({ capability: 'py', sessionId: session });
    expect(later.task.sessionWorker).toBe(home);
    const plain = await otherQueue.submit({ capability: 'py' });
    expect((await otherQueue.claim(['py'], other))?.id).toBe(plain.task.id);
    await sleep(50);
    expect(await otherQueue.claim(['py'], other)).toBeUndefined();
    let ran = claimed.length;
    await sleep(50); // the event of the move reaches the home manager
    for (let t = await homeQueue.claim(['py'], home); t; t = await homeQueue.claim(['py'], home)) {
      expect(t.sessionId).toBe(session);
      ran++;
    }
    expect(ran).toBe(11);

    // The home worker is gone (declared by its manager): the other manager's submission fails session_lost.
    await homeQueue.workerGone(home);
    const lost = await otherQueue.submit({ capability: 'py', sessionId: session });
    expect(lost.task.state).toBe('failed');
    expect(lost.task.error?.code).toBe('session_lost');
    expect((await homeQueue.get(lost.task.id))?.state).toBe('failed');
  });

  it("claims a pinned task as soon as its retry backoff runs out, though its worker's claim found nothing ready meanwhile", async () => {
    const prefix = newPrefix();
    const q = manager(prefix, { backoffMs: 150, maxBackoffMs: 150 });
    const session = `s-${randomUUID()}`;
    await q.submit({ capability: 'py', sessionId: session });
    const first = await q.claim(['py'], 'w1');
    await q.complete(first?.id ?? '', first?.leaseToken ?? '', 1);
    const { task } = await q.submit({ capability: 'py', sessionId: session });
    expect(task.sessionWorker).toBe('w1');
    const c = await eventually(async () => {
      const t = await q.claim(['py'], 'w1');
      if (!t) throw new Error('not claimable yet');
      return t;
    });
    const retried = await q.fail(
      c.id,
      c.leaseToken ?? '',
      { code: 'handler_error', message: 'x', retryable: true },
      { outcome: 'failed' },
    );
    // Not due yet: the worker's pinned queue holds only a delayed job, which is no reason to skip it later.
    await sleep(10);
    expect(await q.claim(['py'], 'w1')).toBeUndefined();
    await sleep(Math.max(0, retried.notBefore - Date.now()) + 30);
    // Nothing announces a delayed job becoming due: the dispatcher's wake-up claim must find it.
    expect((await q.claim(['py'], 'w1'))?.id).toBe(task.id);
  });

  it('relocates a task routed to a worker whose queue was swept before the task got there', async () => {
    const prefix = newPrefix();
    const a = manager(prefix);
    const session = `s-${randomUUID()}`;
    await a.submit({ capability: 'py', sessionId: session });
    await a.claim(['py'], 'w1');
    const pinned = await a.submit({ capability: 'py', sessionId: session, session: 'create-if-missing' });
    expect(pinned.task.sessionWorker).toBe('w1');
    await a.workerGone('w1');
    // Released to any worker: w2 takes it and becomes the session's home.
    const t = await eventually(async () => {
      const c = await a.claim(['py'], 'w2');
      if (!c) throw new Error('not yet');
      return c;
    });
    expect(t.id).toBe(pinned.task.id);
    expect(await a.sessionBinding(session)).toEqual({ workerId: 'w2', lost: false });
    // No job is left behind in the gone worker's queue.
    expect(await a.claim(['py'], 'w1')).toBeUndefined();
  });
});

describe('Redis task queue: a manager dies', () => {
  it('returns its tasks through lock expiry; the late result of the old lease is refused and counted', async () => {
    const prefix = newPrefix();
    const doomed = manager(prefix);
    const survivor = manager(prefix);
    // Subscribed, as a manager's dispatcher is: the task's return is what wakes it to claim again.
    const seen: TaskEvent[] = [];
    survivor.subscribe((e) => seen.push(e));
    await survivor.ready();
    const { task } = await survivor.submit({ capability: 'echo', maxAttempts: 3 });
    const first = await doomed.claim(['echo'], 'w-doomed');
    expect(first?.id).toBe(task.id);
    await doomed.markRunning(task.id, first?.leaseToken ?? '');
    await doomed.abandon(); // no hand-back, no lock renewal: a crash

    const recovered = await eventually(async () => {
      const t = await survivor.get(task.id);
      expect(t?.state).toBe('queued');
      return t as TaskRecord;
    });
    expect(recovered.attempts[0]).toMatchObject({ outcome: 'worker_lost', workerId: 'w-doomed' });
    await eventually(async () => {
      expect(
        seen.some((e) => e.kind === 'retrying' && e.task.id === task.id && e.task.state === 'queued'),
      ).toBe(true);
    });
    const second = await eventually(async () => {
      const t = await survivor.claim(['echo'], 'w-survivor');
      expect(t).toBeDefined();
      return t as TaskRecord;
    });
    expect(second).toMatchObject({ id: task.id, attempt: 2, workerId: 'w-survivor' });
    expect(second.leaseToken).not.toBe(first?.leaseToken);

    const late = await survivor.complete(task.id, first?.leaseToken ?? '', 'late').catch((e: unknown) => e);
    expect(late).toBeInstanceOf(FleetError);
    expect((late as FleetError).code).toBe('stale_lease');
    expect(survivor.staleLeaseCount).toBe(1);
    expect((await survivor.complete(task.id, second.leaseToken ?? '', 'ok')).state).toBe('succeeded');
  });

  it('fails the task when the lost attempt was its last', async () => {
    const prefix = newPrefix();
    const doomed = manager(prefix);
    const survivor = manager(prefix);
    const { task } = await survivor.submit({ capability: 'echo', maxAttempts: 1 });
    await doomed.claim(['echo'], 'w');
    await doomed.abandon();
    const final = await eventually(async () => {
      const t = await survivor.get(task.id);
      expect(t?.state).toBe('failed');
      return t as TaskRecord;
    });
    expect(final.error).toMatchObject({ code: 'worker_lost', details: { attempts: 1 } });
    expect(await survivor.claim(['echo'], 'w')).toBeUndefined();
    expect(await survivor.depth()).toBe(0);
  });

  it('keeps a long task with its manager while the lock is renewed', async () => {
    const prefix = newPrefix();
    const holder = manager(prefix, { lockDurationMs: 300, stalledIntervalMs: 100 });
    const other = manager(prefix, { lockDurationMs: 300, stalledIntervalMs: 100 });
    const { task } = await other.submit({ capability: 'slow' });
    const c = await holder.claim(['slow'], 'w');
    await sleep(1500); // five lock durations
    expect(await other.claim(['slow'], 'w2')).toBeUndefined();
    expect((await other.get(task.id))?.state).toBe('assigned');
    expect((await holder.complete(task.id, c?.leaseToken ?? '', 'done')).state).toBe('succeeded');
  });

  it('hands tasks back at once on graceful shutdown, without spending an attempt', async () => {
    const prefix = newPrefix();
    const leaving = manager(prefix, { lockDurationMs: 60_000 });
    const staying = manager(prefix, { lockDurationMs: 60_000 });
    const { task } = await staying.submit({ capability: 'echo' });
    await leaving.claim(['echo'], 'w');
    expect(leaving.heldCount()).toBe(1);
    await leaving.close();
    const t = await staying.get(task.id);
    expect(t).toMatchObject({ state: 'queued', attempt: 0 });
    expect(await staying.claim(['echo'], 'w2')).toMatchObject({ id: task.id, attempt: 1 });
  });
});

describe('Redis connections', () => {
  async function clientsNamed(prefix: string): Promise<string[]> {
    const admin = new Redis(redis.url);
    try {
      const list = await admin.client('LIST');
      return String(list)
        .split('\n')
        .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '')
        .filter((name) => name.startsWith(`fleet-conn-${prefix}`));
    } finally {
      admin.disconnect();
    }
  }

  it('frees an id whose job was never added (its manager died between reserving it and adding the job)', async () => {
    const prefix = newPrefix();
    const q = manager(prefix, { lockDurationMs: 1000 });
    const { task } = await q.submit({ capability: 'orphan', payload: {} });
    // What a manager killed between reserving the id and adding its job leaves behind: the id, no job.
    const bull = new Queue('cap-orphan', { connection: { url: redis.url }, prefix });
    try {
      expect(await bull.remove(jobIdFor(task.id))).toBe(1);
    } finally {
      await bull.close();
    }
    expect(await q.get(task.id)).toBeUndefined();
    // The client's resubmission (same id) is what repairs it.
    expect((await q.submit({ id: task.id, capability: 'orphan', payload: {} })).created).toBe(true);
    const claimed = await eventually(async () => {
      const t = await q.claim(['orphan'], 'w1');
      if (!t) throw new Error('not claimable yet');
      return t;
    });
    expect(claimed.id).toBe(task.id);
  });

  it("forgets the index entries of tasks whose jobs BullMQ's retention removed", async () => {
    const prefix = newPrefix();
    const q = manager(prefix, { retainFinished: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { task } = await q.submit({ capability: 'trim', idempotencyKey: `key-${i}` });
      const c = await q.claim(['trim'], 'w');
      await q.complete(task.id, c?.leaseToken ?? '', i);
      ids.push(task.id);
      // BullMQ's retention keeps the latest finished job by its finishing millisecond: two in one tie.
      await new Promise((r) => setTimeout(r, 3));
    }
    const client = new Redis(redis.url);
    try {
      // BullMQ keeps one finished job; the sweep drops the others' entries in its second round (≥ 1 s apart).
      await eventually(async () => {
        expect(await client.hkeys(`${prefix}:fleet:loc`)).toEqual([ids[2]]);
        expect(await client.hkeys(`${prefix}:fleet:idem`)).toEqual(['key-2']);
      });
    } finally {
      client.disconnect();
    }
    expect(await q.get(ids[0]!)).toBeUndefined();
    expect((await q.submit({ capability: 'trim', idempotencyKey: 'key-0' })).created).toBe(true);
    expect((await q.submit({ capability: 'trim', idempotencyKey: 'key-2' })).created).toBe(false);
  });

  it("takes a reused id's new submission once the old task's job was trimmed by retention", async () => {
    const prefix = newPrefix();
    const q = manager(prefix);
    const id = `reused-${randomUUID().slice(0, 8)}`;
    await q.submit({ id, capability: 'reuse', payload: { version: 1 } });
    const first = await q.claim(['reuse'], 'w1');
    await q.complete(id, first?.leaseToken ?? '', 1);
    const bull = new Queue('cap-reuse', { connection: { url: redis.url }, prefix });
    try {
      expect(await bull.remove(jobIdFor(id))).toBe(1); // what removeOnComplete's count does to the oldest
    } finally {
      await bull.close();
    }
    expect((await q.submit({ id, capability: 'reuse', payload: { version: 2 } })).created).toBe(true);
    const claimed = await eventually(async () => {
      const t = await q.claim(['reuse'], 'w1');
      if (!t) throw new Error('not claimable yet');
      return t;
    });
    expect(claimed.payload).toEqual({ version: 2 });
    expect((await q.get(id))?.payload).toEqual({ version: 2 });
  });

  it('keeps the progress another manager wrote under the same lease when the holder completes', async () => {
    const prefix = newPrefix();
    const a = manager(prefix);
    const b = manager(prefix);
    const { task } = await a.submit({ capability: 'held', payload: {} });
    const claimed = await eventually(async () => {
      const t = await a.claim(['held'], 'w1');
      if (!t) throw new Error('not claimable yet');
      return t;
    });
    // B writes progress under A's lease: A's remembered record does not have it.
    await b.markRunning(task.id, claimed.leaseToken as string, { percent: 40 });
    const done = await a.complete(task.id, claimed.leaseToken as string, { ok: true });
    expect(done).toMatchObject({ state: 'succeeded', output: { ok: true }, progress: { percent: 40 } });
    expect(a.heldCount()).toBe(0);
  });

  it('opens one connection per role per process, however many queues and operations', async () => {
    const prefix = newPrefix();
    const connections = new RedisConnections({ url: redis.url, prefix, clientName: `fleet-conn-${prefix}` });
    const q = new RedisTaskQueue({
      ...testQueueOptions(),
      redis: connections,
      lockDurationMs: 600,
    });
    const directory = new RedisWorkerDirectory({ redis: connections });
    q.subscribe(() => {});
    await q.ready();
    for (let i = 0; i < 40; i++) {
      const { task } = await q.submit({ capability: `cap${i % 8}` });
      const c = await q.claim([`cap${i % 8}`], 'w');
      await q.complete(task.id, c?.leaseToken ?? '', i);
      await directory.publish(
        {
          workerId: `w${i}`,
          workerType: 'echo',
          endpoint: `ws://127.0.0.1:1/${i}`,
          port: 1,
          status: 'online',
          capabilities: ['echo'],
          currentLoad: 0,
          inFlight: 0,
          maxConcurrency: 1,
          lastHeartbeat: Date.now(),
        },
        10_000,
      );
    }
    expect((await clientsNamed(prefix)).sort()).toEqual([
      `fleet-conn-${prefix}:command`,
      `fleet-conn-${prefix}:subscriber`,
    ]);
    await q.close();
    await directory.close();
    await connections.close();
    await eventually(async () => expect(await clientsNamed(prefix)).toEqual([]));
    await deleteKeys(redis.url, prefix);
    expect(await countKeys(redis.url, prefix)).toBe(0);
  });

  it('fails with a clear error when Redis is unreachable', async () => {
    const prefix = newPrefix();
    // A port nobody listens on: bind one, close it, use it.
    const { createServer } = await import('node:net');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const addr = s.address();
        s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 1));
      });
    });
    const q = manager(prefix, {
      redis: { url: `redis://127.0.0.1:${port}`, prefix, commandTimeoutMs: 400 },
    });
    const err = await q.submit({ capability: 'echo', id: `t-${randomUUID()}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FleetError);
    expect((err as FleetError).message).toMatch(/Redis/);
    const connections = new RedisConnections({
      url: `redis://127.0.0.1:${port}`,
      prefix,
      commandTimeoutMs: 400,
    });
    await expect(connections.ping(400)).rejects.toThrow(/unreachable/);
    await connections.close();
  });

  it('refuses bad connection settings with config_invalid', () => {
    expect(() => new RedisConnections({ url: 'http://127.0.0.1:6379', prefix: 'x' })).toThrow(/redis:\/\//);
    expect(() => new RedisConnections({ url: 'not a url', prefix: 'x' })).toThrow(FleetError);
    expect(() => new RedisConnections({ url: 'redis://127.0.0.1:6379', prefix: 'bad prefix!' })).toThrow(
      /prefix/,
    );
  });
});
