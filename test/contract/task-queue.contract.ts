/**
 * The one behavioural contract of the TaskQueue seam (DESIGN §7). Every store runs it unchanged:
 * `describeTaskQueueContract('memory', opts => new MemoryTaskQueue({...defaults, ...opts}))`.
 *
 * Written for an asynchronous, real-time store (Redis/BullMQ): no fake clock, backoffs of tens of
 * milliseconds, state that may become visible a little later is polled with `eventually()`, and every test
 * uses its own ids and capability names so stores shared between tests (one Redis) cannot cross-talk.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { FleetError, type ErrorCode } from '../../src/protocol/errors.js';
import type { ErrorBody } from '../../src/protocol/messages.js';
import type { TaskEvent, TaskQueue, TaskQueueOptions } from '../../src/manager/queue/task-queue.js';
import type { TaskRecord } from '../../src/manager/queue/task.js';

export type TaskQueueFactory = (options: Partial<TaskQueueOptions>) => Promise<TaskQueue>;

/** Options the suite asks for unless a test overrides them; small backoffs keep it fast on real time. */
const BASE: Partial<TaskQueueOptions> = {
  maxQueued: 1000,
  retainFinished: 1000,
  defaultMaxAttempts: 3,
  backoffMs: 20,
  maxBackoffMs: 40,
  timeoutMs: (capability) => (capability.startsWith('slow-') ? 120_000 : 30_000),
};

const EVENTUALLY_MS = 3000;

/** Polls `check` until it stops throwing, or rethrows its last failure after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = EVENTUALLY_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

async function expectFleetError(promise: Promise<unknown>, code: ErrorCode): Promise<FleetError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a FleetError '${code}'`).toBeInstanceOf(FleetError);
  expect((err as FleetError).code).toBe(code);
  return err as FleetError;
}

const appError = (retryable: boolean, code = 'handler_error'): ErrorBody => ({
  code,
  message: `boom (${code})`,
  retryable,
});

export function describeTaskQueueContract(
  name: string,
  factory: TaskQueueFactory,
  teardown?: (queue: TaskQueue) => Promise<void>,
): void {
  describe(`TaskQueue contract: ${name}`, () => {
    const open: TaskQueue[] = [];
    let run = '';

    const make = async (options: Partial<TaskQueueOptions> = {}): Promise<TaskQueue> => {
      const queue = await factory({ ...BASE, ...options });
      open.push(queue);
      return queue;
    };
    /** A name unique to this test run, for ids, capabilities and keys. */
    const uid = (label: string): string => `${label}-${run}-${randomUUID().slice(0, 8)}`;

    afterEach(async () => {
      for (const queue of open.splice(0)) {
        await queue.close();
        if (teardown) await teardown(queue);
      }
    });
    run = randomUUID().slice(0, 8);

    /** Claims until a task comes back (retry backoffs make a re-queued task ready a little later). */
    const claimSoon = (queue: TaskQueue, caps: readonly string[], worker: string): Promise<TaskRecord> =>
      eventually(async () => {
        const task = await queue.claim(caps, worker);
        if (!task) throw new Error(`no task ready for ${caps.join(',')}`);
        return task;
      });

    describe('submit, get, list', () => {
      it('creates a queued task with the defaults applied', async () => {
        const q = await make();
        const cap = uid('cap');
        const before = Date.now();
        const { task, created } = await q.submit({ capability: cap, payload: { n: 1 } });
        expect(created).toBe(true);
        expect(task.id).toMatch(/\S/);
        expect(task).toMatchObject({
          capability: cap,
          payload: { n: 1 },
          priority: 0,
          state: 'queued',
          attempt: 0,
          maxAttempts: 3,
          timeoutMs: 30_000,
          attempts: [],
        });
        expect(task.createdAt).toBeGreaterThanOrEqual(before - 1000);
        expect(task.createdAt).toBeLessThanOrEqual(Date.now() + 1000);
        const got = await eventually(async () => {
          const t = await q.get(task.id);
          expect(t).toBeDefined();
          return t as TaskRecord;
        });
        expect(got).toMatchObject({ id: task.id, capability: cap, state: 'queued', payload: { n: 1 } });
      });

      it("takes the submission's own timeout, attempts, priority, session and id", async () => {
        const q = await make();
        const id = uid('task');
        const cap = uid('slow');
        const { task } = await q.submit({
          id,
          capability: cap,
          priority: 7,
          timeoutMs: 1234,
          maxAttempts: 5,
          sessionId: 's-1',
        });
        expect(task).toMatchObject({ id, priority: 7, timeoutMs: 1234, maxAttempts: 5, sessionId: 's-1' });
        const other = await q.submit({ capability: `slow-${cap}` });
        expect(other.task.timeoutMs).toBe(120_000);
      });

      it('answers undefined for an unknown id', async () => {
        const q = await make();
        expect(await q.get(uid('missing'))).toBeUndefined();
      });

      it('rejects an invalid submission with invalid_task', async () => {
        const q = await make();
        await expectFleetError(q.submit({ capability: '' }), 'invalid_task');
        await expectFleetError(q.submit({ capability: uid('cap'), id: 'has spaces/slash' }), 'invalid_task');
        await expectFleetError(q.submit({ capability: uid('cap'), priority: 1.5 }), 'invalid_task');
      });

      it('lists with filters by state, capability, worker and limit', async () => {
        const q = await make();
        const a = uid('a');
        const b = uid('b');
        const worker = uid('w');
        const t1 = (await q.submit({ capability: a })).task;
        const t2 = (await q.submit({ capability: a })).task;
        const t3 = (await q.submit({ capability: b })).task;
        const claimed = await claimSoon(q, [b], worker);
        expect(claimed.id).toBe(t3.id);

        await eventually(async () => {
          const ofA = await q.list({ capability: a });
          expect(ofA.map((t) => t.id).sort()).toEqual([t1.id, t2.id].sort());
          const assigned = await q.list({ capability: b, state: 'assigned' });
          expect(assigned.map((t) => t.id)).toEqual([t3.id]);
          const either = await q.list({ state: ['queued', 'assigned'], workerId: worker });
          expect(either.map((t) => t.id)).toEqual([t3.id]);
          expect(await q.list({ capability: a, state: 'succeeded' })).toEqual([]);
          expect(await q.list({ capability: a, limit: 1 })).toHaveLength(1);
        });
      });
    });

    describe('claim order', () => {
      it('claims higher priority first and FIFO within a priority', async () => {
        const q = await make();
        const cap = uid('cap');
        const ids: Record<string, string> = {};
        for (const [label, priority] of [
          ['low', -5],
          ['mid1', 0],
          ['high1', 10],
          ['mid2', 0],
          ['high2', 10],
          ['mid3', 0],
        ] as const) {
          ids[label] = (await q.submit({ capability: cap, priority, id: uid(label) })).task.id;
        }
        const order: string[] = [];
        for (let i = 0; i < 6; i++) order.push((await claimSoon(q, [cap], 'w')).id);
        expect(order).toEqual(['high1', 'high2', 'mid1', 'mid2', 'mid3', 'low'].map((l) => ids[l]));
        expect(await q.claim([cap], 'w')).toBeUndefined();
      });

      it('puts a retried task ahead of fresh ones of its priority, behind higher priorities', async () => {
        const q = await make({ backoffMs: 0, maxBackoffMs: 0 });
        const cap = uid('cap');
        const retried = (await q.submit({ capability: cap, id: uid('retried') })).task;
        const first = await claimSoon(q, [cap], 'w1');
        expect(first.id).toBe(retried.id);
        const fresh = (await q.submit({ capability: cap, id: uid('fresh') })).task;
        const urgent = (await q.submit({ capability: cap, priority: 5, id: uid('urgent') })).task;
        await q.fail(retried.id, first.leaseToken as string, appError(true, 'worker_lost'), {
          outcome: 'worker_lost',
        });
        await eventually(async () => expect((await q.get(retried.id))?.state).toBe('queued'));
        await new Promise((resolve) => setTimeout(resolve, 50));
        const order: string[] = [];
        for (let i = 0; i < 3; i++) order.push((await claimSoon(q, [cap], 'w2')).id);
        expect(order).toEqual([urgent.id, retried.id, fresh.id]);
      });

      it('claims only capabilities the worker has, the best across its set', async () => {
        const q = await make();
        const a = uid('a');
        const b = uid('b');
        const c = uid('c');
        const ta = (await q.submit({ capability: a, priority: 1 })).task;
        const tb = (await q.submit({ capability: b, priority: 5 })).task;
        expect(await q.claim([c], 'w')).toBeUndefined();
        expect(await q.claim([], 'w')).toBeUndefined();
        const first = await claimSoon(q, [a, b, c], 'w');
        expect(first.id).toBe(tb.id);
        const second = await claimSoon(q, [c, a], 'w');
        expect(second.id).toBe(ta.id);
        expect(await q.claim([a, b, c], 'w')).toBeUndefined();
      });

      it('marks a claimed task assigned with a lease, attempt and history', async () => {
        const q = await make();
        const cap = uid('cap');
        const { task } = await q.submit({ capability: cap });
        const worker = uid('worker');
        const claimed = await claimSoon(q, [cap], worker);
        expect(claimed).toMatchObject({ id: task.id, state: 'assigned', attempt: 1, workerId: worker });
        expect(claimed.leaseToken).toMatch(/\S{8,}/);
        expect(claimed.attempts).toHaveLength(1);
        expect(claimed.attempts[0]).toMatchObject({
          attempt: 1,
          workerId: worker,
          leaseToken: claimed.leaseToken,
        });
        const got = await q.get(task.id);
        expect(got).toMatchObject({ state: 'assigned', leaseToken: claimed.leaseToken, workerId: worker });
      });

      it('hands each task to exactly one of many concurrent claimers', async () => {
        const q = await make();
        const cap = uid('cap');
        const submitted = new Set<string>();
        for (let i = 0; i < 10; i++) submitted.add((await q.submit({ capability: cap })).task.id);
        const results = await Promise.all(Array.from({ length: 25 }, (_, i) => q.claim([cap], `w${i}`)));
        const claimed = results.filter((t): t is TaskRecord => t !== undefined).map((t) => t.id);
        expect(new Set(claimed).size).toBe(claimed.length);
        expect(claimed.every((id) => submitted.has(id))).toBe(true);
        // A store with eventual visibility may leave some for a second round, never hand one out twice.
        const rest: string[] = [];
        for (let t = await q.claim([cap], 'late'); t; t = await q.claim([cap], 'late')) rest.push(t.id);
        expect([...claimed, ...rest].sort()).toEqual([...submitted].sort());
      });
    });

    describe('leases and completion', () => {
      it('moves assigned → running with progress, and running progress updates', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap });
        const c = await claimSoon(q, [cap], 'w');
        const lease = c.leaseToken as string;
        const running = await q.markRunning(c.id, lease, { percent: 10, message: 'starting' });
        expect(running.state).toBe('running');
        expect(running.progress).toMatchObject({ percent: 10, message: 'starting' });
        const later = await q.markRunning(c.id, lease, { percent: 60 });
        expect(later.state).toBe('running');
        expect(later.progress?.percent).toBe(60);
        const done = await q.complete(c.id, lease, { ok: true }, [
          { name: 'a.png', contentType: 'image/png', size: 3 },
        ]);
        expect(done).toMatchObject({ state: 'succeeded', output: { ok: true } });
        expect(done.artifacts).toEqual([{ name: 'a.png', contentType: 'image/png', size: 3 }]);
        expect(done.finishedAt).toBeGreaterThanOrEqual(done.createdAt);
        expect(done.attempts[0]).toMatchObject({ outcome: 'succeeded' });
        expect(done.attempts[0]?.finishedAt).toBeDefined();
        await eventually(async () => expect((await q.get(c.id))?.state).toBe('succeeded'));
      });

      it('mints a fresh lease on every claim', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap, maxAttempts: 3 });
        const first = await claimSoon(q, [cap], 'w1');
        await q.fail(first.id, first.leaseToken as string, appError(true, 'worker_lost'), {
          outcome: 'worker_lost',
        });
        const second = await claimSoon(q, [cap], 'w2');
        expect(second.id).toBe(first.id);
        expect(second.attempt).toBe(2);
        expect(second.leaseToken).toBeDefined();
        expect(second.leaseToken).not.toBe(first.leaseToken);
        expect(second.attempts.map((a) => a.leaseToken)).toEqual([first.leaseToken, second.leaseToken]);
        expect(second.attempts[0]).toMatchObject({ outcome: 'worker_lost', workerId: 'w1' });
      });

      it('rejects complete, fail and markRunning from a lease that is no longer current', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap, maxAttempts: 3 });
        const first = await claimSoon(q, [cap], 'w1');
        const oldLease = first.leaseToken as string;
        await q.fail(first.id, oldLease, appError(true, 'worker_lost'), { outcome: 'worker_lost' });
        const second = await claimSoon(q, [cap], 'w2');
        const snapshot = await q.get(first.id);

        const stale = await expectFleetError(q.complete(first.id, oldLease, { late: true }), 'stale_lease');
        expect(stale.message).toContain(first.id);
        await expectFleetError(
          q.fail(first.id, oldLease, appError(false), { outcome: 'failed' }),
          'stale_lease',
        );
        await expectFleetError(q.markRunning(first.id, oldLease, { percent: 99 }), 'stale_lease');
        await expectFleetError(q.complete(first.id, 'never-issued', {}), 'stale_lease');
        expect(await q.get(first.id)).toEqual(snapshot);

        const done = await q.complete(second.id, second.leaseToken as string, { winner: 2 });
        expect(done).toMatchObject({ state: 'succeeded', output: { winner: 2 }, attempt: 2 });
      });

      it('adopts only the current lease of the reporting worker; anything else changes nothing', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap, maxAttempts: 3 });
        const first = await claimSoon(q, [cap], 'w1');
        const lease = first.leaseToken as string;
        const snapshot = await q.get(first.id);
        // A token never issued, and the right token reported by another worker.
        await expectFleetError(q.adopt(first.id, 'never-issued', 'w1'), 'stale_lease');
        await expectFleetError(q.adopt(first.id, lease, 'w2'), 'conflict');
        await expectFleetError(q.adopt(uid('missing'), lease, 'w1'), 'not_found');
        expect(await q.get(first.id)).toEqual(snapshot);
        // The holder's report is adopted, and the adopter completes with the same lease.
        expect(await q.adopt(first.id, lease, 'w1')).toMatchObject({
          id: first.id,
          leaseToken: lease,
          workerId: 'w1',
        });
        // A lease that is no longer current (the task was re-queued and claimed again) is not adopted.
        await q.fail(first.id, lease, appError(true, 'worker_lost'), { outcome: 'worker_lost' });
        const second = await claimSoon(q, [cap], 'w2');
        await expectFleetError(q.adopt(first.id, lease, 'w1'), 'stale_lease');
        const done = await q.complete(second.id, second.leaseToken as string, { ok: true });
        expect(done.state).toBe('succeeded');
        await expectFleetError(q.adopt(second.id, second.leaseToken as string, 'w2'), 'stale_lease');
      });

      it('completes exactly once', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap });
        const c = await claimSoon(q, [cap], 'w');
        const lease = c.leaseToken as string;
        const results = await Promise.allSettled([
          q.complete(c.id, lease, { n: 1 }),
          q.complete(c.id, lease, { n: 2 }),
          q.fail(c.id, lease, appError(false), { outcome: 'failed' }),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect((r.reason as FleetError).code).toBe('stale_lease');
        }
        const winner = (won[0] as PromiseFulfilledResult<TaskRecord>).value;
        await expectFleetError(q.complete(c.id, lease, { n: 3 }), 'stale_lease');
        const final = await q.get(c.id);
        expect(final?.state).toBe(winner.state);
        expect(final?.output).toEqual(winner.output);
      });

      it('answers not_found for lease operations on an unknown task', async () => {
        const q = await make();
        await expectFleetError(q.complete(uid('nope'), 'lease', {}), 'not_found');
        await expectFleetError(
          q.fail(uid('nope'), 'lease', appError(false), { outcome: 'failed' }),
          'not_found',
        );
        await expectFleetError(q.markRunning(uid('nope'), 'lease'), 'not_found');
      });
    });

    describe('idempotency and bounds', () => {
      it('returns the same task for the same idempotency key, and for an existing id', async () => {
        const q = await make();
        const cap = uid('cap');
        const key = uid('key');
        const a = await q.submit({ capability: cap, idempotencyKey: key, payload: { v: 1 } });
        const b = await q.submit({ capability: cap, idempotencyKey: key, payload: { v: 2 } });
        expect(a.created).toBe(true);
        expect(b.created).toBe(false);
        expect(b.task.id).toBe(a.task.id);
        expect(b.task.payload).toEqual({ v: 1 });
        const c = await q.submit({ capability: cap, idempotencyKey: uid('key') });
        expect(c.created).toBe(true);
        expect(c.task.id).not.toBe(a.task.id);

        const id = uid('explicit');
        const d = await q.submit({ id, capability: cap });
        const e = await q.submit({ id, capability: cap, payload: { other: true } });
        expect([d.created, e.created]).toEqual([true, false]);
        expect(e.task.id).toBe(id);
        expect(await q.depth(cap)).toBe(3);
      });

      it('keeps the same task for its key after it finished', async () => {
        const q = await make();
        const cap = uid('cap');
        const key = uid('key');
        const a = await q.submit({ capability: cap, idempotencyKey: key });
        const c = await claimSoon(q, [cap], 'w');
        await q.complete(c.id, c.leaseToken as string, 'done');
        const again = await q.submit({ capability: cap, idempotencyKey: key });
        expect(again.created).toBe(false);
        expect(again.task).toMatchObject({ id: a.task.id, state: 'succeeded', output: 'done' });
      });

      it('answers queue_full at the bound, naming it, and has room again after a claim', async () => {
        const q = await make({ maxQueued: 3 });
        const cap = uid('cap');
        const key = uid('key');
        await q.submit({ capability: cap, idempotencyKey: key });
        await q.submit({ capability: cap });
        await q.submit({ capability: uid('other') });
        const full = await expectFleetError(q.submit({ capability: cap }), 'queue_full');
        expect(full.message).toContain('3');
        expect(full.retryable).toBe(true);
        expect(full.httpStatus).toBe(429);
        // A duplicate is not a new task: it is answered even when the queue is full.
        const dup = await q.submit({ capability: cap, idempotencyKey: key });
        expect(dup.created).toBe(false);

        await claimSoon(q, [cap], 'w');
        const after = await eventually(() => q.submit({ capability: cap }));
        expect(after.created).toBe(true);
      });
    });

    describe('retries', () => {
      it('re-queues a retryable failure with backoff, then runs it again', async () => {
        const q = await make({ backoffMs: 150, maxBackoffMs: 150 });
        const cap = uid('cap');
        const events: TaskEvent[] = [];
        q.subscribe((e) => events.push(e));
        const { task } = await q.submit({ capability: cap, maxAttempts: 3 });
        const c = await claimSoon(q, [cap], 'w');
        const failedAt = Date.now();
        const err = appError(true);
        const retried = await q.fail(c.id, c.leaseToken as string, err, { outcome: 'failed' });
        expect(retried.state).toBe('queued');
        expect(retried.error).toMatchObject({ code: err.code, retryable: true });
        // Full jitter over [0.5, 1] × 150 ms: not ready for at least 75 ms.
        expect(retried.notBefore).toBeGreaterThanOrEqual(failedAt + 70);
        expect(retried.notBefore).toBeLessThanOrEqual(Date.now() + 160);
        expect(retried.attempts[0]).toMatchObject({ outcome: 'failed', error: err });
        expect(await q.claim([cap], 'w')).toBeUndefined();
        const ready = await q.nextReadyAt();
        expect(ready).toBeDefined();
        expect(Math.abs((ready as number) - retried.notBefore)).toBeLessThanOrEqual(5);
        expect(await q.depth(cap)).toBe(1);

        const again = await claimSoon(q, [cap], 'w');
        expect(Date.now()).toBeGreaterThanOrEqual(retried.notBefore);
        expect(again).toMatchObject({ id: task.id, attempt: 2, state: 'assigned' });
        await eventually(() =>
          expect(events.some((e) => e.kind === 'retrying' && e.task.id === task.id)).toBe(true),
        );
        expect(await q.nextReadyAt()).toBeUndefined();
      });

      it('ends the task on a non-retryable error, keeping the error', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap, maxAttempts: 5 });
        const c = await claimSoon(q, [cap], 'w');
        const err: ErrorBody = {
          code: 'python_error',
          message: 'NameError: x',
          retryable: false,
          details: { line: 3 },
        };
        const failed = await q.fail(c.id, c.leaseToken as string, err, { outcome: 'failed' });
        expect(failed.state).toBe('failed');
        expect(failed.error).toEqual(err);
        expect(failed.attempt).toBe(1);
        expect(failed.finishedAt).toBeDefined();
        expect(failed.attempts).toHaveLength(1);
        expect(failed.attempts[0]).toMatchObject({ outcome: 'failed', error: err });
        expect(await q.claim([cap], 'w')).toBeUndefined();
        expect(await q.depth(cap)).toBe(0);
      });

      it('lets FailOptions.retryable override the error, both ways', async () => {
        const q = await make();
        const cap = uid('cap');
        const { task: t1 } = await q.submit({ capability: cap, maxAttempts: 3 });
        const c1 = await claimSoon(q, [cap], 'w');
        const ended = await q.fail(c1.id, c1.leaseToken as string, appError(true), {
          outcome: 'failed',
          retryable: false,
        });
        expect(ended.state).toBe('failed');
        expect(ended.id).toBe(t1.id);

        const { task: t2 } = await q.submit({ capability: cap, maxAttempts: 3 });
        const c2 = await claimSoon(q, [cap], 'w');
        expect(c2.id).toBe(t2.id);
        const kept = await q.fail(c2.id, c2.leaseToken as string, appError(false), {
          outcome: 'failed',
          retryable: true,
        });
        expect(kept.state).toBe('queued');
      });

      it('retries timeouts and lost workers by their codes', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap, maxAttempts: 3 });
        const c1 = await claimSoon(q, [cap], 'w');
        const lost = await q.fail(
          c1.id,
          c1.leaseToken as string,
          { code: 'worker_lost', message: 'gone', retryable: false },
          {
            outcome: 'worker_lost',
          },
        );
        expect(lost.state).toBe('queued');
        const c2 = await claimSoon(q, [cap], 'w');
        const slow = await q.fail(
          c2.id,
          c2.leaseToken as string,
          { code: 'timeout', message: 'late', retryable: false },
          {
            outcome: 'timed_out',
          },
        );
        expect(slow.state).toBe('queued');
        expect(slow.attempts.map((a) => a.outcome)).toEqual(['worker_lost', 'timed_out']);
      });

      it('ends as failed when maxAttempts are used up, with details.attempts', async () => {
        const q = await make();
        const cap = uid('cap');
        const { task } = await q.submit({ capability: cap, maxAttempts: 2 });
        const c1 = await claimSoon(q, [cap], 'w');
        await q.fail(c1.id, c1.leaseToken as string, appError(true), { outcome: 'failed' });
        const c2 = await claimSoon(q, [cap], 'w');
        expect(c2.attempt).toBe(2);
        const last: ErrorBody = {
          code: 'browser_crashed',
          message: 'crash 2',
          retryable: true,
          details: { pid: 9 },
        };
        const final = await q.fail(c2.id, c2.leaseToken as string, last, { outcome: 'failed' });
        expect(final).toMatchObject({ id: task.id, state: 'failed', attempt: 2 });
        expect(final.error).toMatchObject({
          code: 'browser_crashed',
          message: 'crash 2',
          details: { pid: 9, attempts: 2 },
        });
        expect(final.attempts).toHaveLength(2);
        expect(await q.depth(cap)).toBe(0);
        await new Promise((r) => setTimeout(r, 60));
        expect(await q.claim([cap], 'w')).toBeUndefined();
      });

      it('ends as timed_out when the last attempt timed out', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap, maxAttempts: 1 });
        const c = await claimSoon(q, [cap], 'w');
        const final = await q.fail(
          c.id,
          c.leaseToken as string,
          { code: 'timeout', message: 'ran past 30s', retryable: true },
          {
            outcome: 'timed_out',
          },
        );
        expect(final.state).toBe('timed_out');
        expect(final.error).toMatchObject({ code: 'timeout', details: { attempts: 1 } });
      });

      it('retry() puts a failed task back with a fresh attempt budget', async () => {
        const q = await make();
        const cap = uid('cap');
        const { task } = await q.submit({ capability: cap, maxAttempts: 1 });
        const c1 = await claimSoon(q, [cap], 'w');
        await q.fail(c1.id, c1.leaseToken as string, appError(false), { outcome: 'failed' });
        const back = await q.retry(task.id);
        expect(back).toMatchObject({ id: task.id, state: 'queued', attempt: 0 });
        expect(back.error).toBeUndefined();
        expect(back.attempts).toHaveLength(1);
        const c2 = await claimSoon(q, [cap], 'w');
        expect(c2).toMatchObject({ id: task.id, attempt: 1 });
        expect(c2.attempts).toHaveLength(2);
        const done = await q.complete(c2.id, c2.leaseToken as string, 'second time');
        expect(done.state).toBe('succeeded');
        await expectFleetError(q.retry(task.id), 'conflict');
      });

      it('retry() refuses live tasks and unknown ids', async () => {
        const q = await make();
        const cap = uid('cap');
        const { task } = await q.submit({ capability: cap });
        await expectFleetError(q.retry(task.id), 'conflict');
        await expectFleetError(q.retry(uid('nope')), 'not_found');
      });
    });

    describe('cancel', () => {
      it('cancels a queued task at once: not claimable, not counted', async () => {
        const q = await make();
        const cap = uid('cap');
        const { task } = await q.submit({ capability: cap });
        const keep = (await q.submit({ capability: cap })).task;
        const cancelled = await q.cancel(task.id, 'user changed their mind');
        expect(cancelled.state).toBe('cancelled');
        expect(cancelled.error).toMatchObject({ code: 'cancelled', message: 'user changed their mind' });
        expect(await q.depth(cap)).toBe(1);
        const c = await claimSoon(q, [cap], 'w');
        expect(c.id).toBe(keep.id);
        expect(await q.claim([cap], 'w')).toBeUndefined();
      });

      it('cancels a task waiting in retry backoff', async () => {
        const q = await make({ backoffMs: 200, maxBackoffMs: 200 });
        const cap = uid('cap');
        await q.submit({ capability: cap });
        const c = await claimSoon(q, [cap], 'w');
        await q.fail(c.id, c.leaseToken as string, appError(true), { outcome: 'failed' });
        expect((await q.cancel(c.id)).state).toBe('cancelled');
        expect(await q.depth(cap)).toBe(0);
        await new Promise((r) => setTimeout(r, 250));
        expect(await q.claim([cap], 'w')).toBeUndefined();
      });

      it('cancels an assigned task; its lease can no longer complete it', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap });
        const c = await claimSoon(q, [cap], 'w9');
        const cancelled = await q.cancel(c.id);
        expect(cancelled.state).toBe('cancelled');
        expect(cancelled.workerId).toBe('w9');
        expect(cancelled.attempts[0]).toMatchObject({ outcome: 'cancelled' });
        await expectFleetError(q.complete(c.id, c.leaseToken as string, 'late'), 'stale_lease');
        expect((await q.get(c.id))?.state).toBe('cancelled');
      });

      it('cancels a running task', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap });
        const c = await claimSoon(q, [cap], 'w');
        await q.markRunning(c.id, c.leaseToken as string);
        const cancelled = await q.cancel(c.id, 'stop');
        expect(cancelled.state).toBe('cancelled');
        await expectFleetError(
          q.fail(c.id, c.leaseToken as string, appError(true), { outcome: 'failed' }),
          'stale_lease',
        );
      });

      it('refuses to cancel a final task (conflict) or an unknown one (not_found)', async () => {
        const q = await make();
        const cap = uid('cap');
        await q.submit({ capability: cap });
        const c = await claimSoon(q, [cap], 'w');
        await q.complete(c.id, c.leaseToken as string, 1);
        await expectFleetError(q.cancel(c.id), 'conflict');
        expect((await q.get(c.id))?.state).toBe('succeeded');
        const { task } = await q.submit({ capability: cap });
        await q.cancel(task.id);
        await expectFleetError(q.cancel(task.id), 'conflict');
        await expectFleetError(q.cancel(uid('nope')), 'not_found');
      });

      it('retry() brings a cancelled task back', async () => {
        const q = await make();
        const cap = uid('cap');
        const { task } = await q.submit({ capability: cap });
        await q.cancel(task.id);
        expect((await q.retry(task.id)).state).toBe('queued');
        expect((await claimSoon(q, [cap], 'w')).id).toBe(task.id);
      });
    });

    describe('depth, events, close', () => {
      it('counts waiting tasks per capability and in total', async () => {
        const q = await make();
        const a = uid('a');
        const b = uid('b');
        expect(await q.depth(a)).toBe(0);
        for (let i = 0; i < 3; i++) await q.submit({ capability: a });
        await q.submit({ capability: b });
        await eventually(async () => {
          expect(await q.depth(a)).toBe(3);
          expect(await q.depth(b)).toBe(1);
          expect(await q.depth()).toBeGreaterThanOrEqual(4);
        });
        await claimSoon(q, [a], 'w');
        await eventually(async () => expect(await q.depth(a)).toBe(2));
      });

      it('reports changes to subscribers in order, and stops after unsubscribe', async () => {
        const q = await make();
        const cap = uid('cap');
        const seen: Array<[TaskEvent['kind'], string]> = [];
        const unsubscribe = q.subscribe((e) => {
          if (e.task.capability === cap) seen.push([e.kind, e.task.state]);
        });
        const { task } = await q.submit({ capability: cap, maxAttempts: 2 });
        const c1 = await claimSoon(q, [cap], 'w');
        await q.fail(c1.id, c1.leaseToken as string, appError(true), { outcome: 'failed' });
        const c2 = await claimSoon(q, [cap], 'w');
        await q.markRunning(c2.id, c2.leaseToken as string);
        await q.markRunning(c2.id, c2.leaseToken as string, { percent: 50 });
        await q.complete(c2.id, c2.leaseToken as string, 'ok');
        const expected: Array<[TaskEvent['kind'], string]> = [
          ['submitted', 'queued'],
          ['claimed', 'assigned'],
          ['retrying', 'queued'],
          ['claimed', 'assigned'],
          ['running', 'running'],
          ['progress', 'running'],
          ['finished', 'succeeded'],
        ];
        await eventually(() => expect(seen).toEqual(expected));
        unsubscribe();
        await q.submit({ capability: cap });
        await new Promise((r) => setTimeout(r, 50));
        expect(seen).toHaveLength(expected.length);
        expect(task.id).toBe(c2.id);
      });

      it('keeps working when a subscriber throws', async () => {
        const q = await make();
        const cap = uid('cap');
        q.subscribe(() => {
          throw new Error('listener bug');
        });
        const { task } = await q.submit({ capability: cap });
        const c = await claimSoon(q, [cap], 'w');
        expect((await q.complete(c.id, c.leaseToken as string, 1)).state).toBe('succeeded');
        expect(c.id).toBe(task.id);
      });

      it('closes idempotently and refuses work afterwards', async () => {
        const q = await make();
        await q.close();
        await q.close();
        await expect(q.submit({ capability: uid('cap') })).rejects.toBeInstanceOf(FleetError);
      });
    });

    describe('session affinity', () => {
      const lostCode = (t: TaskRecord | undefined): string | undefined => t?.error?.code;

      it('binds a session to the worker that claims its first task; the rest wait for it, others flow past', async () => {
        const q = await make();
        const cap = uid('cap');
        const session = uid('s');
        const first = await q.submit({ capability: cap, sessionId: session });
        expect(await q.sessionBinding(session)).toBeUndefined();
        const c1 = await claimSoon(q, [cap], 'w1');
        expect(c1.id).toBe(first.task.id);
        expect(await q.sessionBinding(session)).toEqual({ workerId: 'w1', lost: false });
        const second = await q.submit({ capability: cap, sessionId: session, priority: 5 });
        expect(second.task.sessionWorker).toBe('w1');
        const plain = await q.submit({ capability: cap });
        // w2 gets the plain task although the session task is ahead of it (priority 5): no head-of-line block.
        const c2 = await claimSoon(q, [cap], 'w2');
        expect(c2.id).toBe(plain.task.id);
        expect(await q.claim([cap], 'w2')).toBeUndefined();
        expect(await q.depth(cap)).toBe(1);
        const c3 = await claimSoon(q, [cap], 'w1');
        expect(c3).toMatchObject({ id: second.task.id, workerId: 'w1', sessionWorker: 'w1' });
        expect(await q.depth(cap)).toBe(0);
      });

      it('never binds one session to two workers, even for first tasks claimed at once', async () => {
        const q = await make();
        const cap = uid('cap');
        const session = uid('s');
        for (let i = 0; i < 6; i++) await q.submit({ capability: cap, sessionId: session });
        const plain = await q.submit({ capability: cap });
        const claimed = (await Promise.all(['w1', 'w2', 'w3'].map((w) => q.claim([cap], w)))).filter(
          (t): t is TaskRecord => t !== undefined,
        );
        const binding = await q.sessionBinding(session);
        expect(binding?.lost).toBe(false);
        const home = binding?.workerId as string;
        for (const t of claimed) {
          if (t.sessionId === session) expect(t.workerId).toBe(home);
          else expect(t.id).toBe(plain.task.id);
        }
        // Everything else of the session comes to its home only.
        const others = ['w1', 'w2', 'w3'].filter((w) => w !== home);
        let rest = 0;
        for (;;) {
          for (const w of others) {
            const t = await q.claim([cap], w);
            if (t) expect(t.id).toBe(plain.task.id);
          }
          const t = await q.claim([cap], home);
          if (!t) break;
          if (t.sessionId === session) rest++;
        }
        expect(rest + claimed.filter((t) => t.sessionId === session).length).toBe(6);
      });

      it("fails a gone worker's session tasks with session_lost, now and later; create-if-missing starts afresh", async () => {
        const q = await make();
        const cap = uid('cap');
        const session = uid('s');
        await q.submit({ capability: cap, sessionId: session });
        const c1 = await claimSoon(q, [cap], 'w1');
        await q.complete(c1.id, c1.leaseToken as string, 1);
        const waiting = await q.submit({ capability: cap, sessionId: session });
        const rescued = await q.submit({ capability: cap, sessionId: session, session: 'create-if-missing' });
        expect(waiting.task.sessionWorker).toBe('w1');

        expect(await q.workerGone('w1')).toBe(2);
        expect(await q.workerGone('w1')).toBe(0);
        expect(await q.sessionBinding(session)).toEqual({ workerId: 'w1', lost: true });
        const ended = await eventually(async () => {
          const t = await q.get(waiting.task.id);
          expect(t?.state).toBe('failed');
          return t as TaskRecord;
        });
        expect(ended.error).toMatchObject({
          code: 'session_lost',
          retryable: false,
          details: { sessionId: session, workerId: 'w1' },
        });
        // A later task of the session fails too, without running anywhere.
        const late = await q.submit({ capability: cap, sessionId: session });
        await eventually(async () => expect(lostCode(await q.get(late.task.id))).toBe('session_lost'));
        expect((await q.get(late.task.id))?.attempts).toEqual([]);

        // The create-if-missing task may run anywhere; its worker becomes the session's new home.
        const c2 = await claimSoon(q, [cap], 'w2');
        expect(c2.id).toBe(rescued.task.id);
        expect(await q.sessionBinding(session)).toEqual({ workerId: 'w2', lost: false });
        const next = await q.submit({ capability: cap, sessionId: session });
        expect(next.task.sessionWorker).toBe('w2');
        // w1 back under the same id has no such session: nothing of it goes there.
        expect(await q.claim([cap], 'w1')).toBeUndefined();
        expect((await claimSoon(q, [cap], 'w2')).id).toBe(next.task.id);
      });

      it('announces the end of every task that ends without a claim: session lost at submit, when its worker goes, or cancelled queued', async () => {
        const q = await make();
        const cap = uid('cap');
        const session = uid('s');
        const finished = new Map<string, string>();
        q.subscribe((e) => {
          if (e.kind === 'finished') finished.set(e.task.id, e.task.state);
        });
        await q.submit({ capability: cap, sessionId: session });
        const c1 = await claimSoon(q, [cap], 'w1');
        await q.complete(c1.id, c1.leaseToken as string, 1);
        const waiting = await q.submit({ capability: cap, sessionId: session });
        const queued = await q.submit({ capability: cap });
        await q.workerGone('w1');
        const late = await q.submit({ capability: cap, sessionId: session });
        expect(late.task.state).toBe('failed');
        await q.cancel(queued.task.id);
        // A waiter for a task's end (submit-and-wait) learns of each from its event alone.
        await eventually(() =>
          expect([waiting.task.id, late.task.id, queued.task.id].map((id) => finished.get(id))).toEqual([
            'failed',
            'failed',
            'cancelled',
          ]),
        );
      });

      it('does not retry a session task on another worker when its worker was lost under it', async () => {
        const q = await make();
        const cap = uid('cap');
        for (const order of ['gone-first', 'fail-first'] as const) {
          const session = uid(order);
          const { task } = await q.submit({ capability: cap, sessionId: session });
          const c = await claimSoon(q, [cap], 'w1');
          expect(c.id).toBe(task.id);
          const lost: ErrorBody = { code: 'worker_lost', message: 'gone', retryable: true };
          if (order === 'gone-first') {
            await q.workerGone('w1');
            const after = await q.fail(c.id, c.leaseToken as string, lost, { outcome: 'worker_lost' });
            expect(after.state).toBe('failed');
            expect(after.error?.code).toBe('session_lost');
          } else {
            const after = await q.fail(c.id, c.leaseToken as string, lost, { outcome: 'worker_lost' });
            expect(after.state).toBe('queued');
            await q.workerGone('w1');
          }
          await eventually(async () => {
            expect(await q.claim([cap], 'w2')).toBeUndefined();
            expect(lostCode(await q.get(task.id))).toBe('session_lost');
          });
        }
      });

      it('retries a create-if-missing task elsewhere when its worker was lost under it', async () => {
        const q = await make();
        const cap = uid('cap');
        const session = uid('s');
        await q.submit({ capability: cap, sessionId: session });
        const c1 = await claimSoon(q, [cap], 'w1');
        await q.complete(c1.id, c1.leaseToken as string, 1);
        const { task } = await q.submit({
          capability: cap,
          sessionId: session,
          session: 'create-if-missing',
        });
        expect(task.sessionWorker).toBe('w1');
        const c2 = await claimSoon(q, [cap], 'w1');
        expect(c2.id).toBe(task.id);
        await q.workerGone('w1');
        const lost: ErrorBody = { code: 'worker_lost', message: 'gone', retryable: true };
        expect((await q.fail(c2.id, c2.leaseToken as string, lost, { outcome: 'worker_lost' })).state).toBe(
          'queued',
        );
        const again = await claimSoon(q, [cap], 'w2');
        expect(again).toMatchObject({ id: task.id, workerId: 'w2', attempt: 2 });
        expect(await q.sessionBinding(session)).toEqual({ workerId: 'w2', lost: false });
      });

      it('cancels a pinned task and counts it in depth', async () => {
        const q = await make();
        const cap = uid('cap');
        const session = uid('s');
        await q.submit({ capability: cap, sessionId: session });
        await claimSoon(q, [cap], 'w1');
        const pinned = await q.submit({ capability: cap, sessionId: session });
        expect(await q.depth(cap)).toBe(1);
        expect((await q.cancel(pinned.task.id)).state).toBe('cancelled');
        expect(await q.depth(cap)).toBe(0);
        await new Promise((r) => setTimeout(r, 50));
        expect(await q.claim([cap], 'w1')).toBeUndefined();
      });

      it('forgets a binding once its worker has forgotten the session', async () => {
        const q = await make();
        const cap = uid('cap');
        const session = uid('s');
        await q.submit({ capability: cap, sessionId: session, timeoutMs: 50 });
        const c = await eventually(async () => {
          const t = await q.claim([cap], 'w1', { sessionKeepMs: 100 });
          if (!t) throw new Error('not yet');
          return t;
        });
        await q.complete(c.id, c.leaseToken as string, 1);
        expect(await q.sessionBinding(session)).toEqual({ workerId: 'w1', lost: false });
        await eventually(async () => expect(await q.sessionBinding(session)).toBeUndefined());
        const again = await q.submit({ capability: cap, sessionId: session });
        expect(again.task.sessionWorker).toBeUndefined();
        expect((await claimSoon(q, [cap], 'w2')).id).toBe(again.task.id);
      });

      it('refuses `session` without a sessionId', async () => {
        const q = await make();
        const err = await expectFleetError(
          q.submit({ capability: uid('cap'), session: 'create-if-missing' }),
          'invalid_task',
        );
        expect(err.message).toContain('session');
      });
    });
  });
}
