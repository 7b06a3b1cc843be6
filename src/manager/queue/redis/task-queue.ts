/**
 * The distributed store: the task queue on Redis, where the BullMQ job *is* the task record
 * (docs/distributed.md: One model). One BullMQ queue per worker type (`queueFor(capability)`), one per
 * worker holding a session's pinned tasks (`pin-…`), a job per task (job id from the task id). The lease
 * token of an attempt is the job's BullMQ lock token: a claim is `getNextJob(token)`, an answer is
 * `moveToCompleted/moveToFailed(…, token)` or `moveToDelayed` for a retry, and BullMQ's own lock check
 * refuses a stale one (counted, `stale_lease`). Locks of held jobs are extended while their workers run
 * them; a dead manager's jobs return through BullMQ's stalled check, and the attempt they lost is ended
 * when the job is next read or claimed (job-record.ts).
 *
 * Over 400 lines because it is the TaskQueue interface itself (22 operations), each a short sequence of
 * BullMQ calls. The shared state and plumbing are in core.ts, claiming and session routing in routing.ts,
 * BullMQ calls in jobs.ts, events in events.ts, background work in maintenance.ts, the layout check in
 * layout.ts, names in keys.ts and Fleet's few scripts in scripts.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import { FleetError } from '../../../protocol/errors.js';
import type { ErrorBody } from '../../../protocol/messages.js';
import { copyTask, createTaskRecord } from '../task-record.js';
import {
  assertRetryable,
  cancelTask,
  completeTask,
  endAttempt,
  failLostSession,
  failTask,
  markTaskRunning,
  resetForRetry,
} from '../task-transitions.js';
import { isFinal, type ArtifactMeta, type TaskRecord, type TaskState, type TaskSubmission } from '../task.js';
import {
  assertLeaseHolder,
  sessionLostError,
  type ClaimOptions,
  type FailOptions,
  type SessionBinding,
  type SubmitResult,
  type TaskEvent,
  type TaskFilter,
  type TaskQueue,
} from '../task-queue.js';
import { bullPriority, ENDED_QUEUE, pinQueueFor, taskIdOf } from './keys.js';
import { COUNT_QUEUED, LOSE_SESSIONS, NEXT_DELAYED, RESERVE } from './scripts.js';
import { dataOf } from './job-record.js';

import { MAX_ROUNDS, PIN_RECHECK_MS } from './core.js';
import { RedisQueueRouting } from './routing.js';

export type { RedisTaskQueueOptions } from './core.js';

export class RedisTaskQueue extends RedisQueueRouting implements TaskQueue {
  // ── the TaskQueue interface ────────────────────────────────────────────────────────────────────────

  async submit(submission: TaskSubmission): Promise<SubmitResult> {
    this.assertOpen();
    const record = createTaskRecord(submission, this.options, this.now());
    return this.guard('submit', async () => {
      this.queueName(record.capability);
      const lostOn = await this.route(record);
      const target = lostOn !== undefined ? ENDED_QUEUE : this.jobQueueOf(record);
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const count = lostOn === undefined && this.mustCount();
        const [outcome, arg = ''] = (await RESERVE.run(
          this.redis,
          [this.keys.loc, this.keys.idem, this.keys.queues, this.keys.newQueues],
          [
            record.id,
            target,
            record.idempotencyKey ?? '',
            count ? this.options.maxQueued : '',
            `${this.keys.prefix}:`,
            ENDED_QUEUE,
          ],
        )) as [string, string?];
        if (outcome === 'exists') {
          const existing = await this.readTask(arg);
          if (!existing) continue; // trimmed between the check and the read
          return { task: existing.task, created: false };
        }
        if (outcome === 'full') {
          this.queued = { at: Date.now(), n: Number(arg) };
          throw this.queueFull(Number(arg));
        }
        if (count) this.queued = { at: Date.now(), n: Number(arg) };
        if (this.queued && lostOn === undefined) this.queued.n++;
        if (lostOn !== undefined) {
          await this.endUnclaimed(record);
          this.events.emit('finished', record);
          return { task: copyTask(record), created: true };
        }
        await this.addJob(target, record);
        this.events.emit('submitted', record);
        if (record.sessionWorker !== undefined) {
          // The worker may have gone between the routing read and the job's add, after its queue was swept.
          const current = await this.sessionBinding(record.sessionId ?? '');
          if (current?.workerId !== record.sessionWorker || current.lost) await this.relocate(record.id);
        }
        return { task: copyTask(record), created: true };
      }
      throw new FleetError('internal', `submit of task ${record.id} kept racing with other writers`);
    });
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    this.assertOpen();
    return this.guard('get', async () => (await this.readTask(id))?.task);
  }

  async list(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    this.assertOpen();
    return this.guard('list', async () => {
      const states = filter.state === undefined ? undefined : ([] as TaskState[]).concat(filter.state);
      const types = new Set<string>();
      for (const s of states ?? ['queued', 'assigned', 'succeeded', 'failed']) {
        if (s === 'queued') ['wait', 'prioritized', 'delayed', 'active'].forEach((x) => types.add(x));
        else if (s === 'assigned' || s === 'running') types.add('active');
        else if (s === 'succeeded') types.add('completed');
        else types.add('failed');
      }
      const out: TaskRecord[] = [];
      for (const queueName of await this.knownQueues()) {
        const ids = await this.jobs.queue(queueName).getRanges([...types] as never[], 0, -1, true);
        const raws = await this.jobs.readMany(queueName, [...new Set(ids)]);
        const locs = raws.length
          ? await this.redis.hmget(this.keys.loc, ...raws.map((r) => taskIdOf(r.jobId)))
          : [];
        raws.forEach((raw, i) => {
          if (locs[i] !== queueName) return; // a leftover of a task whose job moved
          const t = this.recordOrReport(raw);
          if (!t) return;
          if (states && !states.includes(t.state)) return;
          if (filter.capability !== undefined && t.capability !== filter.capability) return;
          if (filter.workerId !== undefined && t.workerId !== filter.workerId) return;
          out.push(t);
        });
      }
      out.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
      return filter.limit !== undefined ? out.slice(0, Math.max(0, filter.limit)) : out;
    });
  }

  async claim(
    capabilities: readonly string[],
    workerId: string,
    options: ClaimOptions = {},
  ): Promise<TaskRecord | undefined> {
    this.assertOpen();
    if (capabilities.length === 0) return undefined;
    return this.guard('claim', async () => {
      const now = this.now();
      const served = new Set(capabilities);
      const queueNames = [...new Set(capabilities.map((c) => this.queueName(c)))];
      // The worker's pinned queue is looked at unless it was found empty (no delayed job either) lately
      // and no job entered it since (its stream's entries, read by every manager, say so): most workers
      // hold no session, and a claim of one queue needs no ranking.
      const pinQueue = pinQueueFor(workerId);
      const askedAt = Date.now();
      const emptyAt = this.pinEmptyAt.get(pinQueue);
      const withPinned = emptyAt === undefined || askedAt - emptyAt >= PIN_RECHECK_MS;
      if (withPinned) queueNames.push(pinQueue);
      const { ranked, later } = await this.rankQueues(queueNames);
      if (withPinned && !ranked.includes(pinQueue) && !later.has(pinQueue))
        this.markPinEmpty(pinQueue, askedAt);
      for (const queueName of ranked) {
        const worker = this.jobs.worker(queueName, workerId);
        for (let i = 0; i < 50; i++) {
          const token = randomUUID();
          const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
          if (!job) {
            // BullMQ's Worker keeps when the queue's next delayed job is due (`blockUntil`, 0 for none);
            // a queue with one is never taken for empty, as nothing would announce it becoming due.
            if (
              queueName === pinQueue &&
              Number((worker as unknown as { blockUntil?: unknown }).blockUntil) === 0
            )
              this.markPinEmpty(pinQueue, askedAt);
            break;
          }
          job.token = token;
          const outcome = await this.bindClaim(job, queueName, token, served, workerId, now, options);
          if (outcome === 'handed-back') break;
          if (outcome !== 'dropped') return outcome;
        }
      }
      return undefined;
    });
  }

  async workerGone(workerId: string): Promise<number> {
    this.assertOpen();
    return this.guard('workerGone', async () => {
      await LOSE_SESSIONS.run(
        this.redis,
        [this.keys.workerSessions(workerId)],
        [this.keys.sessionPrefix, workerId],
      );
      await this.jobs.forgetClaimer(workerId);
      const pinQueue = pinQueueFor(workerId);
      const base = this.keys.bull(pinQueue);
      if ((await this.redis.exists(`${base}wait`, `${base}prioritized`, `${base}delayed`)) === 0) return 0;
      const ids = await this.jobs.queue(pinQueue).getRanges(['wait', 'prioritized', 'delayed'], 0, -1, true);
      let count = 0;
      for (const jobId of ids) if (await this.relocate(taskIdOf(jobId))) count++;
      return count;
    });
  }

  async sessionBinding(sessionId: string): Promise<SessionBinding | undefined> {
    this.assertOpen();
    return this.guard('sessionBinding', async () => {
      const value = await this.redis.get(this.keys.session(sessionId));
      if (!value) return undefined;
      return value.startsWith('!')
        ? { workerId: value.slice(1), lost: true }
        : { workerId: value, lost: false };
    });
  }

  async markRunning(id: string, leaseToken: string, progress?: TaskRecord['progress']): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('markRunning', () =>
      this.serial(id, async () => {
        const { task, job, queue, held } = await this.leased(id, leaseToken);
        const t = copyTask(task);
        const now = this.now();
        const event = markTaskRunning(t, progress, now);
        if (!event) return t;
        const mark = { l: leaseToken, a: now, ...(t.progress ? { p: t.progress } : {}) };
        if (held) {
          // Written a moment later unless the task ends first, as most do (`flushMarks`): this process
          // answers from the held record meanwhile, other processes read `assigned` that moment longer.
          this.remember(t, leaseToken);
          const h = this.held.get(id);
          if (h) h.mark = mark;
          this.scheduleMarks();
        } else {
          // A lease read afresh has its lock checked now. A mark under a stale lease would be ignored by
          // readers anyway (job-record.ts).
          await this.fence(job, leaseToken, t);
          this.events.caused(queue, job.id ?? '', 'progress');
          await job.updateProgress(mark);
        }
        this.events.emit(event, t);
        return copyTask(t);
      }),
    );
  }

  async complete(
    id: string,
    leaseToken: string,
    output: unknown,
    artifacts?: ArtifactMeta[],
  ): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('complete', () =>
      this.serial(id, async () => {
        const { task, job, queue } = await this.leased(id, leaseToken, 'final');
        const t = copyTask(task);
        completeTask(t, output, artifacts, this.now());
        this.events.caused(queue, job.id ?? '', 'completed');
        await this.finish(job, leaseToken, t, 'completed');
        this.events.emit('finished', t);
        return t;
      }),
    );
  }

  async fail(id: string, leaseToken: string, error: ErrorBody, options: FailOptions): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('fail', () =>
      this.serial(id, async () => {
        const { task, job, queue, starts } = await this.leased(id, leaseToken, 'final');
        const t = copyTask(task);
        const now = this.now();
        const decision = failTask(t, error, options, { ...this.options, random: this.random }, now);
        let again = decision.kind === 'retry';
        let moved = false;
        if (again && t.sessionId !== undefined) {
          const binding = await this.sessionBinding(t.sessionId);
          if (binding?.lost && t.session !== 'create-if-missing') {
            // A retry must not run without its session: the worker holding it is gone, so the task ends.
            failLostSession(t, sessionLostError(t.sessionId, binding.workerId), now);
            again = false;
          } else if (t.sessionWorker !== undefined) {
            moved = binding?.lost !== false || binding.workerId !== t.sessionWorker;
          }
        }
        if (again) {
          await this.fence(job, leaseToken, t);
          await job.updateData(dataOf(t, starts));
          this.events.caused(queue, job.id ?? '', 'delayed');
          await job.moveToDelayed(Math.max(Date.now(), t.notBefore), leaseToken);
          this.onStreamEntry(queue, 'delayed');
          this.held.delete(id);
          // Into the retried band of its priority, read by BullMQ when it promotes the job.
          await job
            .changePriority({ priority: bullPriority(t) })
            .catch((err: unknown) => this.backgroundError(err));
          this.events.emit('retrying', t);
          if (moved) await this.relocate(id);
        } else {
          this.events.caused(queue, job.id ?? '', 'failed');
          await this.finish(job, leaseToken, t, 'failed');
          this.events.emit('finished', t);
        }
        return t;
      }),
    );
  }

  async adopt(id: string, leaseToken: string, workerId: string): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('adopt', () =>
      this.serial(id, async () => {
        const { task, job, queue, starts } = await this.leased(id, leaseToken, 'fresh');
        assertLeaseHolder(task, workerId);
        // Extending the lock proves it has not lapsed, and keeps it from lapsing now.
        await this.fence(job, leaseToken, task);
        this.held.set(id, { queue, job, token: leaseToken, task, starts });
        return copyTask(task);
      }),
    );
  }

  release(id: string, leaseToken: string): boolean {
    if (this.held.get(id)?.token === leaseToken) this.held.delete(id);
    return true;
  }

  async cancel(id: string, reason?: string): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('cancel', async () => {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const found = await this.readTask(id);
        if (!found) throw new FleetError('not_found', `no task with id ${id}`);
        const { task, raw } = found;
        if (isFinal(task.state))
          throw new FleetError('conflict', `task ${id} is already ${task.state}; nothing to cancel`);
        const t = copyTask(task);
        const lease = t.leaseToken;
        cancelTask(t, reason, this.now());
        if (lease !== undefined && raw.lock === lease) {
          this.events.caused(raw.queue, raw.jobId, 'failed');
          const ok = await this.finish(this.jobs.job(raw), lease, t, 'failed').then(
            () => true,
            (err: unknown) => {
              if (err instanceof FleetError && err.code === 'stale_lease') {
                this.staleLeaseCount--; // not a late answer: the lock moved under this cancel
                return false;
              }
              throw err;
            },
          );
          if (!ok) continue;
        } else {
          if (!(await this.jobs.remove(raw.queue, id))) continue; // claimed meanwhile: cancel that attempt
          await this.endUnclaimed(t);
        }
        this.events.emit('finished', t);
        return t;
      }
      throw this.racing(id);
    });
  }

  async retry(id: string): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('retry', async () => {
      const found = await this.readTask(id);
      if (!found) throw new FleetError('not_found', `no task with id ${id}`);
      assertRetryable(found.task);
      const t = copyTask(found.task);
      resetForRetry(t, this.now());
      const lostOn = await this.route(t);
      if (lostOn !== undefined) {
        await this.jobs.remove(found.raw.queue, id);
        await this.endUnclaimed(t);
        this.events.emit('finished', t);
        return t;
      }
      const queued = Number(await COUNT_QUEUED.run(this.redis, [], ['', ...(await this.queuePrefixes())]));
      if (queued >= this.options.maxQueued) throw this.queueFull(queued);
      await this.jobs.remove(found.raw.queue, id);
      await this.placeJob(this.jobQueueOf(t), t);
      this.events.emit('retrying', t);
      return t;
    });
  }

  async depth(capability?: string): Promise<number> {
    this.assertOpen();
    return this.guard('depth', async () => {
      const prefixes = await this.queuePrefixes();
      if (capability === undefined) return Number(await COUNT_QUEUED.run(this.redis, [], ['', ...prefixes]));
      // A capability's jobs wait in its own queue or a worker's pinned one (jobQueueOf): counting them
      // reads each queued job's name, so the other worker types' queues are left out. The dashboard asks
      // this for every capability every second.
      let own: string | undefined;
      try {
        own = this.keys.bull(this.queueName(capability));
      } catch {
        own = undefined; // no valid queue name: its jobs could be nowhere else but pinned
      }
      const pinned = `${this.keys.prefix}:pin-`;
      const where = prefixes.filter((p) => p === own || p.startsWith(pinned));
      if (where.length === 0) return 0;
      return Number(await COUNT_QUEUED.run(this.redis, [], [capability, ...where]));
    });
  }

  async nextReadyAt(): Promise<number | undefined> {
    this.assertOpen();
    return this.guard('nextReadyAt', async () => {
      const at = await NEXT_DELAYED.run(this.redis, [], [this.now(), ...(await this.queuePrefixes())]);
      return typeof at === 'string' ? Number(at) : undefined;
    });
  }

  subscribe(listener: (event: TaskEvent) => void): () => void {
    this.assertOpen();
    return this.events.subscribe(listener);
  }

  onRemoteWork(listener: (n: number) => void): () => void {
    this.assertOpen();
    return this.events.onRemoteWork(listener);
  }

  onCorruptRecord(listener: (error: FleetError) => void): () => void {
    this.corruptListeners.add(listener);
    return () => this.corruptListeners.delete(listener);
  }

  /** Resolves once the store checked its layout and events from other managers are being received. */
  async ready(): Promise<void> {
    await this.opened;
    await this.redis.ping();
    await this.events.ready;
  }

  /**
   * Graceful shutdown: tasks this manager still holds go back to their queue at once, with their attempt
   * not counted, instead of waiting for their locks to expire.
   */
  async handBack(): Promise<number> {
    let count = 0;
    for (const [taskId, h] of [...this.held]) {
      try {
        const t = copyTask(h.task);
        const now = this.now();
        endAttempt(t, now, 'worker_lost', {
          code: 'worker_lost',
          message: 'handed back: the manager shut down',
          retryable: true,
        });
        // A shutdown is not the task's failure: the attempt does not count against its budget.
        t.attempt = Math.max(0, t.attempt - 1);
        t.state = 'queued';
        t.notBefore = now;
        t.updatedAt = now;
        delete t.workerId;
        delete t.leaseToken;
        if ((await h.job.extendLock(h.token, this.lockDurationMs)) === 1) {
          await h.job.updateData(dataOf(t, h.starts));
          await h.job.moveToWait(h.token);
          this.onStreamEntry(h.queue, 'waiting');
          this.events.emit('retrying', t);
          count++;
        }
      } catch (err) {
        this.backgroundError(err);
      }
      this.held.delete(taskId);
    }
    return count;
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.closed) await this.handBack().catch(() => 0);
      this.closed = true;
      for (const t of this.timers) clearInterval(t);
      clearTimeout(this.marksTimer);
      this.events.stop();
      await this.jobs.close();
      if (this.ownsConnections) await this.connections.close();
    })();
    return this.closing;
  }

  /** What a crash looks like to the other managers: nothing handed back, held tasks return through lock expiry. */
  async abandon(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.marksTimer);
    this.events.stop();
    this.held.clear();
    this.closing ??= Promise.resolve();
    if (this.ownsConnections) {
      for (const role of this.connections.openRoles()) this.connections.get(role).disconnect();
    }
  }

  /** Tasks this process holds a lock for (for tests and metrics). */
  heldCount(): number {
    return this.held.size;
  }
}
