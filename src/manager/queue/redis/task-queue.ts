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
 * Over 400 lines because it is the TaskQueue interface itself: one method per operation, each a short
 * sequence of BullMQ calls; plumbing lives in jobs.ts, events.ts, maintenance.ts and layout.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { FleetError, toFleetError } from '../../../protocol/errors.js';
import type { ErrorBody } from '../../../protocol/messages.js';
import { RedisConnections, type RedisConnectionOptions } from '../../../store/redis-connection.js';
import { TaskRecordSchema } from '../stored-record.js';
import { copyTask, createTaskRecord } from '../task-record.js';
import {
  assertRetryable,
  assignTask,
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
  sessionBindingTtlMs,
  sessionLostError,
  validateTaskQueueOptions,
  type ClaimOptions,
  type FailOptions,
  type SessionBinding,
  type SubmitResult,
  type TaskEvent,
  type TaskFilter,
  type TaskQueue,
  type TaskQueueOptions,
} from '../task-queue.js';
import { TaskEvents } from './events.js';
import { loseAttempt, parseMark, recordOfJob } from './job-record.js';
import { BullJobs, isLockRefusal, type RawJob } from './jobs.js';
import {
  bullPriority,
  checkQueueName,
  defaultQueueFor,
  ENDED_QUEUE,
  FleetKeys,
  jobIdFor,
  pinQueueFor,
  taskIdOf,
} from './keys.js';
import { assertCurrentLayout } from './layout.js';
import { checkStalled, every, newSweepState, renewLocks, sweepIndexes, type Held } from './maintenance.js';
import { BIND_SESSION, COUNT_QUEUED, LOCATE, LOSE_SESSIONS, NEXT_DELAYED, PEEK, RESERVE } from './scripts.js';

export interface RedisTaskQueueOptions extends TaskQueueOptions {
  /** A process's shared connections (preferred), or options to open private ones that `close()` closes. */
  redis: RedisConnections | RedisConnectionOptions;
  /** The BullMQ queue for a capability: in Fleet, the worker type offering it. @default one per capability */
  queueFor?: (capability: string) => string;
  /** How long a claimed job stays locked without renewal; a dead manager's tasks return after about this. @default 10000 */
  lockDurationMs?: number;
  /** How often this manager runs BullMQ's stalled check. @default the smaller of lockDurationMs / 2 and 1 s */
  stalledIntervalMs?: number;
  /** Identifies this process (the manager id). */
  instanceId?: string;
  /** Called with errors of background work (lock renewal, stalled check) that have no caller to throw to. */
  onBackgroundError?: (err: Error) => void;
}

const MAX_ROUNDS = 20;
/** How long a worker's pinned queue found empty is skipped by its claims unless a job is added to it. */
const PIN_RECHECK_MS = 1_000;
/** How long a count of the queued jobs serves the bound while far from it (`submit`). */
const BOUND_RECOUNT_MS = 250;

export class RedisTaskQueue implements TaskQueue {
  readonly instanceId: string;
  /** Late results refused because their lease was no longer current (exactly-once completion at work). */
  staleLeaseCount = 0;
  private readonly connections: RedisConnections;
  private readonly ownsConnections: boolean;
  private readonly redis: Redis;
  private readonly keys: FleetKeys;
  private readonly jobs: BullJobs;
  private readonly events: TaskEvents;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly queueFor: (capability: string) => string;
  private readonly lockDurationMs: number;
  private readonly held = new Map<string, Held>();
  private readonly sweep = newSweepState();
  /** Pinned queue → when it was found empty; → when a job was last added to it. */
  private readonly pinEmptyAt = new Map<string, number>();
  private readonly pinAddedAt = new Map<string, number>();
  /**
   * Queue → until when a claim need not ask it: it was found empty and nothing was added since. Only while
   * the event reader runs (it reports every manager's adds); capped at the queue's next delayed job.
   */
  private readonly drainedUntil = new Map<string, number>();
  private readonly addedAt = new Map<string, number>();
  /** The queues in use, read at most once a second or when a new one is announced. */
  private queueList: { at: number; names: string[] } | undefined;
  /** The queued jobs over all queues as last counted, plus what this process added since. */
  private queued: { at: number; n: number } | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly corruptListeners = new Set<(error: FleetError) => void>();
  private readonly opened: Promise<void>;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: RedisTaskQueueOptions) {
    validateTaskQueueOptions(options);
    this.lockDurationMs = options.lockDurationMs ?? 10_000;
    if (!Number.isFinite(this.lockDurationMs) || this.lockDurationMs < 100) {
      throw new FleetError(
        'config_invalid',
        `manager.redis.lock_duration must be at least 100 ms, got ${this.lockDurationMs}`,
      );
    }
    const stalledIntervalMs =
      options.stalledIntervalMs ?? Math.max(50, Math.min(1_000, Math.round(this.lockDurationMs / 2)));
    this.ownsConnections = !(options.redis instanceof RedisConnections);
    this.connections =
      options.redis instanceof RedisConnections ? options.redis : new RedisConnections(options.redis);
    this.redis = this.connections.get('command');
    this.keys = new FleetKeys(this.connections.prefix);
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.queueFor = options.queueFor ?? defaultQueueFor;
    this.instanceId = options.instanceId ?? randomUUID();
    const onError = (err: unknown): void => this.backgroundError(err);
    this.jobs = new BullJobs(this.redis, this.keys, {
      lockDurationMs: this.lockDurationMs,
      stalledIntervalMs,
      retainFinished: options.retainFinished,
      onError,
    });
    this.events = new TaskEvents(
      this.keys,
      this.redis,
      () => this.connections.get('subscriber'),
      (queue, taskId) => this.readIn(queue, taskId),
      onError,
      (taskId, leaseToken) => leaseToken !== undefined && this.held.get(taskId)?.token === leaseToken,
      (queue, event) => this.onStreamEntry(queue, event),
    );
    this.opened = assertCurrentLayout(this.redis, this.keys);
    this.opened.catch(() => undefined);
    const alive = (): boolean => !this.closed;
    this.timers.push(
      every(Math.max(50, Math.round(this.lockDurationMs / 3)), () => this.renew(), alive, onError),
      every(
        Math.max(1_000, this.lockDurationMs),
        async () => {
          await sweepIndexes(this.redis, this.keys, this.sweep);
        },
        alive,
        onError,
      ),
      every(
        stalledIntervalMs,
        () => checkStalled(this.redis, this.keys, this.jobs, (queue, ids) => this.endExhausted(queue, ids)),
        alive,
        onError,
      ),
    );
  }

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
      const queueNames = [...new Set(capabilities.map((c) => this.queueName(c)))].filter(
        (q) => !this.isDrained(q),
      );
      // The worker's pinned queue is looked at unless it was found empty lately and no job was added to it
      // since (its stream's `added` entries, read by every manager, say so): most workers hold no session,
      // and a claim of one queue needs no ranking.
      const pinQueue = pinQueueFor(workerId);
      const askedAt = Date.now();
      const emptyAt = this.pinEmptyAt.get(pinQueue);
      const withPinned = emptyAt === undefined || askedAt - emptyAt >= PIN_RECHECK_MS;
      if (withPinned && !this.isDrained(pinQueue)) queueNames.push(pinQueue);
      if (queueNames.length === 0) return undefined;
      const ranked = await this.rankQueues(queueNames);
      if (withPinned && !ranked.includes(pinQueue)) this.markPinEmpty(pinQueue, askedAt);
      for (const queueName of ranked) {
        const worker = this.jobs.worker(queueName);
        for (let i = 0; i < 50; i++) {
          const token = randomUUID();
          const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
          if (!job) {
            if (queueName === pinQueue) this.markPinEmpty(pinQueue, askedAt);
            this.markDrained(queueName, worker, askedAt);
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
        // A lease held here has its lock checked by every renewal (a lost one is forgotten); one read
        // afresh is checked now. A mark under a stale lease would be ignored by readers anyway (job-record.ts).
        if (!held) await this.fence(job, leaseToken, t);
        this.events.caused(queue, job.id ?? '', 'progress');
        await job.updateProgress({ l: leaseToken, a: now, ...(t.progress ? { p: t.progress } : {}) });
        this.remember(t, leaseToken);
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
        const { task, job, queue } = await this.leased(id, leaseToken, 'final');
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
          await job.updateData(t);
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
        const { task, job, queue } = await this.leased(id, leaseToken, 'fresh');
        assertLeaseHolder(task, workerId);
        // Extending the lock proves it has not lapsed, and keeps it from lapsing now.
        await this.fence(job, leaseToken, task);
        this.held.set(id, { queue, job, token: leaseToken, task });
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
      const target = this.jobQueueOf(t);
      await this.jobs.remove(target, id);
      await this.locate(id, target);
      await this.addJob(target, t);
      this.events.emit('retrying', t);
      return t;
    });
  }

  async depth(capability?: string): Promise<number> {
    this.assertOpen();
    return this.guard('depth', async () =>
      Number(await COUNT_QUEUED.run(this.redis, [], [capability ?? '', ...(await this.queuePrefixes())])),
    );
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
          await h.job.updateData(t);
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

  // ── claiming ───────────────────────────────────────────────────────────────────────────────────────

  /** Queues ordered by the job each would hand out next: best priority first, then oldest task. */
  private async rankQueues(queueNames: string[]): Promise<string[]> {
    if (queueNames.length === 1) return queueNames;
    const flat = (await PEEK.run(
      this.redis,
      [],
      [Date.now(), ...queueNames.map((q) => this.keys.bull(q))],
    )) as (number | string)[];
    const ranked: { name: string; prio: number; at: number }[] = [];
    queueNames.forEach((name, i) => {
      const prio = Number(flat[i * 3]);
      if (prio >= 0) ranked.push({ name, prio, at: Number(flat[i * 3 + 1]) });
    });
    ranked.sort((a, b) => a.prio - b.prio || a.at - b.at);
    return ranked.map((r) => r.name);
  }

  private async bindClaim(
    job: Job,
    queueName: string,
    token: string,
    served: ReadonlySet<string>,
    workerId: string,
    now: number,
    options: ClaimOptions,
  ): Promise<TaskRecord | 'dropped' | 'handed-back'> {
    const jobId = job.id ?? '';
    const parsed = TaskRecordSchema.safeParse(job.data);
    if (!parsed.success || parsed.data.id !== taskIdOf(jobId)) {
      this.reportCorrupt(
        new FleetError(
          'store_corrupt',
          `the job ${this.keys.bull(queueName)}${jobId} does not carry a task`,
          {
            details: { key: `${this.keys.bull(queueName)}${jobId}` },
          },
        ),
      );
      await job
        .moveToFailed(Object.assign(new Error('not a Fleet task'), { stack: '' }), token, false)
        .catch(() => 0);
      return 'dropped';
    }
    const t = copyTask(parsed.data);
    if (!served.has(t.capability)) {
      await job.moveToWait(token).catch((err: unknown) => this.backgroundError(err));
      this.onStreamEntry(queueName, 'waiting');
      return 'handed-back';
    }
    if (t.state === 'queued' && t.notBefore > now) {
      // Not due by Fleet's clock (an injected one may run behind Redis's): back to BullMQ's delayed set.
      await job
        .moveToDelayed(Date.now() + (t.notBefore - now), token)
        .then(() => this.onStreamEntry(queueName, 'delayed'))
        .catch((err: unknown) => this.backgroundError(err));
      return 'dropped';
    }
    if (t.state === 'assigned' || t.state === 'running') {
      // The previous lease died with its lock (its manager stopped renewing): that attempt is lost.
      if (!loseAttempt(t, now, { ...this.options, random: this.random })) {
        this.events.caused(queueName, jobId, 'failed');
        await this.finish(job, token, t, 'failed').catch(() => undefined);
        this.events.emit('finished', t);
        return 'dropped';
      }
    }
    if (t.sessionId !== undefined) {
      const [outcome, holder = ''] = (await BIND_SESSION.run(
        this.redis,
        [this.keys.session(t.sessionId), this.keys.workerSessions(workerId)],
        [
          workerId,
          sessionBindingTtlMs(t.timeoutMs, options),
          t.session === 'create-if-missing' ? '1' : '',
          t.sessionId,
        ],
      )) as [string, string?];
      if (outcome === 'other') {
        // Another worker holds the session (two first tasks of one session): the task waits for it.
        t.sessionWorker = holder;
        t.updatedAt = now;
        const target = pinQueueFor(holder);
        await this.jobs.remove(target, t.id);
        await this.locate(t.id, target);
        await this.addJob(target, t);
        await job.moveToCompleted('"moved"', token, false).catch(() => undefined);
        await this.jobs.remove(queueName, t.id).catch(() => false);
        this.events.emit('routed', t);
        return 'dropped';
      }
      if (outcome === 'lost') {
        failLostSession(t, sessionLostError(t.sessionId, holder), now);
        this.events.caused(queueName, jobId, 'failed');
        await this.finish(job, token, t, 'failed').catch(() => undefined);
        this.events.emit('finished', t);
        return 'dropped';
      }
    }
    assignTask(t, workerId, token, now);
    await job.updateData(t);
    this.held.set(t.id, { queue: queueName, job, token, task: t });
    this.events.emit('claimed', t);
    return copyTask(t);
  }

  /**
   * Routes a task about to be queued by the session table: pinned to the live worker holding its session
   * (`sessionWorker`), or failed `session_lost` when that worker is gone (returns its id), or left to any.
   */
  private async route(t: TaskRecord): Promise<string | undefined> {
    if (t.sessionWorker !== undefined) delete t.sessionWorker;
    if (t.sessionId === undefined) return undefined;
    const binding = await this.sessionBinding(t.sessionId);
    if (!binding) return undefined;
    if (!binding.lost) {
      t.sessionWorker = binding.workerId;
      return undefined;
    }
    if (t.session === 'create-if-missing') return undefined;
    failLostSession(t, sessionLostError(t.sessionId, binding.workerId), this.now());
    return binding.workerId;
  }

  /**
   * Re-routes a queued task pinned to a worker whose binding changed: it ends `session_lost`, or waits for
   * the session's new worker, or goes back to any worker. A job a claim holds is left to that claim.
   */
  private async relocate(taskId: string): Promise<boolean> {
    const found = await this.readTask(taskId);
    if (!found || found.task.state !== 'queued' || found.task.sessionWorker === undefined) return false;
    const t = copyTask(found.task);
    const from = found.raw.queue;
    const lostOn = await this.route(t);
    if (lostOn === undefined && this.jobQueueOf(t) === from) return false;
    if (!(await this.jobs.remove(from, taskId))) return false;
    t.updatedAt = this.now();
    if (lostOn !== undefined) {
      await this.endUnclaimed(t);
      this.events.emit('finished', t);
    } else {
      const target = this.jobQueueOf(t);
      await this.jobs.remove(target, taskId);
      await this.locate(taskId, target);
      await this.addJob(target, t);
      this.events.emit('routed', t);
    }
    return true;
  }

  /** The BullMQ queue holding a task's job: its session's worker's when pinned, its capability's otherwise. */
  private jobQueueOf(t: TaskRecord): string {
    return t.sessionWorker !== undefined ? pinQueueFor(t.sessionWorker) : this.queueName(t.capability);
  }

  // ── jobs ───────────────────────────────────────────────────────────────────────────────────────────

  private async addJob(queueName: string, t: TaskRecord): Promise<void> {
    this.events.caused(queueName, jobIdFor(t.id), 'added');
    this.onStreamEntry(queueName, 'added');
    if (this.queueList && !this.queueList.names.includes(queueName)) this.queueList = undefined;
    await this.jobs.add(queueName, t);
  }

  /**
   * A task that ends without a claim holding its job (cancelled while queued, session lost): BullMQ ends
   * only an active job, so its record is added to the ended queue and finished there by whoever takes it.
   */
  private async endUnclaimed(t: TaskRecord): Promise<void> {
    await this.jobs.remove(ENDED_QUEUE, t.id);
    await this.locate(t.id, ENDED_QUEUE);
    this.events.caused(ENDED_QUEUE, jobIdFor(t.id), 'added');
    this.events.caused(ENDED_QUEUE, jobIdFor(t.id), 'failed');
    await this.jobs.add(ENDED_QUEUE, t);
    const worker = this.jobs.worker(ENDED_QUEUE);
    for (let i = 0; i < 100; i++) {
      const token = randomUUID();
      const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
      if (!job) return;
      const data = job.data as TaskRecord;
      await job
        .moveToFailed(Object.assign(new Error(JSON.stringify(data)), { stack: '' }), token, false)
        .catch((err: unknown) => this.backgroundError(err));
    }
  }

  /**
   * Jobs the stalled check put back: one whose lost attempt was its last reads as failed, and is ended now
   * rather than left in wait for a claim to find (a claim that took it meanwhile ends it itself).
   */
  private async endExhausted(queue: string, jobIds: string[]): Promise<void> {
    for (const jobId of jobIds) {
      const taskId = taskIdOf(jobId);
      const raw = await this.jobs.read(queue, taskId);
      const t = raw ? this.recordOrReport(raw) : undefined;
      if (!t || !isFinal(t.state) || raw?.hash.finishedOn !== undefined) continue;
      if (!(await this.jobs.remove(queue, taskId))) continue;
      await this.endUnclaimed(t);
      this.events.emit('finished', t);
    }
  }

  /** Finishes a held job with its final record, BullMQ checking the lease; a refusal is `stale_lease`. */
  private async finish(job: Job, token: string, t: TaskRecord, how: 'completed' | 'failed'): Promise<void> {
    try {
      if (how === 'completed') await job.moveToCompleted(t, token, false);
      else await job.moveToFailed(Object.assign(new Error(JSON.stringify(t)), { stack: '' }), token, false);
    } catch (err) {
      if (!isLockRefusal(err)) throw err;
      this.held.delete(t.id);
      throw this.stale(t.id, `BullMQ refused the lease: ${(err as Error).message}`);
    }
    this.held.delete(t.id);
  }

  /** The lock check of a change that BullMQ's own calls do not check: extending the lock proves it is ours. */
  private async fence(job: Job, token: string, t: TaskRecord): Promise<void> {
    if ((await job.extendLock(token, this.lockDurationMs)) !== 1) {
      this.held.delete(t.id);
      throw this.stale(t.id, 'the lock of this lease has lapsed');
    }
  }

  private async locate(taskId: string, queue: string): Promise<void> {
    await LOCATE.run(this.redis, [this.keys.loc, this.keys.queues, this.keys.newQueues], [taskId, queue]);
  }

  /**
   * Whether this submission counts the queued jobs for the bound. Far below it a count a moment old is
   * good enough (what other managers added since is within the margin); within 10 % of it, every time.
   */
  private mustCount(): boolean {
    const q = this.queued;
    return !q || Date.now() - q.at >= BOUND_RECOUNT_MS || q.n >= 0.9 * this.options.maxQueued;
  }

  private isDrained(queue: string): boolean {
    const until = this.drainedUntil.get(queue);
    return until !== undefined && Date.now() < until && this.events.size > 0;
  }

  /**
   * BullMQ's Worker keeps, after an empty fetch, when its queue's next delayed job is due (`blockUntil`,
   * what its own blocking fetch waits for); the queue counts as drained until then, at most a second.
   */
  private markDrained(queue: string, worker: unknown, askedAt: number): void {
    if (this.events.size === 0 || (this.addedAt.get(queue) ?? 0) >= askedAt) return;
    const now = Date.now();
    const next = Number((worker as { blockUntil?: unknown }).blockUntil);
    this.drainedUntil.set(
      queue,
      Number.isFinite(next) && next > 0 ? Math.min(next, now + 1_000) : now + 1_000,
    );
  }

  private markPinEmpty(pinQueue: string, askedAt: number): void {
    // A job added after the question was asked is not missed: the queue is not marked empty then.
    if ((this.pinAddedAt.get(pinQueue) ?? 0) < askedAt) this.pinEmptyAt.set(pinQueue, Date.now());
  }

  /** Every entry of a stream the event reader reads (`new-queues` as the queue name `''`). */
  private onStreamEntry(queue: string, event: string): void {
    if (queue === '') this.queueList = undefined;
    else if (event === 'added' || event === 'waiting' || event === 'stalled' || event === 'delayed') {
      this.drainedUntil.delete(queue);
      this.addedAt.set(queue, Date.now());
    }
    if (event === 'added' && queue.startsWith('pin-')) {
      this.pinEmptyAt.delete(queue);
      this.pinAddedAt.set(queue, Date.now());
    }
  }

  private async renew(): Promise<void> {
    await renewLocks(this.jobs, this.held, this.lockDurationMs);
  }

  // ── records ────────────────────────────────────────────────────────────────────────────────────────

  private queueName(capability: string): string {
    return checkQueueName(this.queueFor(capability), capability);
  }

  private async knownQueues(): Promise<string[]> {
    const now = Date.now();
    if (this.queueList && now - this.queueList.at < 1_000) return this.queueList.names;
    const names = await this.redis.smembers(this.keys.queues);
    this.queueList = { at: now, names };
    return names;
  }

  private async queuePrefixes(): Promise<string[]> {
    return (await this.knownQueues()).filter((q) => q !== ENDED_QUEUE).map((q) => this.keys.bull(q));
  }

  private async readTask(id: string): Promise<{ task: TaskRecord; raw: RawJob } | undefined> {
    await this.opened;
    const queue = await this.redis.hget(this.keys.loc, id);
    if (!queue) return undefined;
    const raw = await this.jobs.read(queue, id);
    if (!raw) return undefined;
    try {
      return { task: this.recordOf(raw), raw };
    } catch (err) {
      this.reportCorrupt(err as FleetError);
      throw err;
    }
  }

  private async readIn(queue: string, id: string): Promise<TaskRecord | undefined> {
    const raw = await this.jobs.read(queue, id);
    return raw ? this.recordOrReport(raw) : undefined;
  }

  private recordOf(raw: RawJob): TaskRecord {
    return recordOfJob(raw.hash, raw.lock, `${this.keys.bull(raw.queue)}${raw.jobId}`, {
      ...this.options,
      random: this.random,
    });
  }

  private recordOrReport(raw: RawJob): TaskRecord | undefined {
    try {
      return this.recordOf(raw);
    } catch (err) {
      this.reportCorrupt(err as FleetError);
      return undefined;
    }
  }

  /** The record and job of a current lease; anything else is `stale_lease` and changes nothing. */
  private async leased(
    id: string,
    leaseToken: string,
    how: 'held' | 'final' | 'fresh' = 'held',
  ): Promise<{ task: TaskRecord; job: Job; queue: string; held: boolean }> {
    const held = this.held.get(id);
    if (how !== 'fresh' && held?.token === leaseToken) {
      if (how === 'held') return { task: held.task, job: held.job, queue: held.queue, held: true };
      // Another manager may have written the attempt's progress (a worker that moved to it): keep it.
      const mark = parseMark(
        (await this.redis.hget(`${this.keys.bull(held.queue)}${jobIdFor(id)}`, 'progress')) ?? undefined,
      );
      if (mark && mark.l === leaseToken) {
        held.task.state = 'running';
        if (mark.p) held.task.progress = { ...held.task.progress, ...mark.p };
      }
      return { task: held.task, job: held.job, queue: held.queue, held: true };
    }
    const found = await this.readTask(id);
    if (!found) throw new FleetError('not_found', `no task with id ${id}`);
    const t = found.task;
    if (isFinal(t.state))
      throw this.stale(id, `task ${id} is already ${t.state}; the lease is no longer current`, t);
    if ((t.state !== 'assigned' && t.state !== 'running') || t.leaseToken !== leaseToken)
      throw this.stale(
        id,
        `task ${id}: the lease is not current (task is ${t.state}, attempt ${t.attempt})`,
        t,
      );
    return { task: t, job: this.jobs.job(found.raw), queue: found.raw.queue, held: false };
  }

  private remember(t: TaskRecord, leaseToken: string): void {
    const held = this.held.get(t.id);
    if (held?.token === leaseToken) held.task = t;
  }

  private stale(id: string, message: string, t?: TaskRecord): FleetError {
    this.staleLeaseCount++;
    return new FleetError('stale_lease', message.startsWith('task ') ? message : `task ${id}: ${message}`, {
      details: { taskId: id, ...(t ? { state: t.state, attempt: t.attempt } : {}) },
    });
  }

  /** Runs a change of a task held here after the one in progress, so two changes of it never race. */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const held = this.held.get(id);
    if (!held) return fn();
    const run = (held.busy ?? Promise.resolve()).then(fn, fn);
    held.busy = run.catch(() => undefined);
    return run;
  }

  private reportCorrupt(error: FleetError): void {
    for (const listener of this.corruptListeners) listener(error);
  }

  // ── plumbing ───────────────────────────────────────────────────────────────────────────────────────

  private backgroundError(err: unknown): void {
    if (this.closed) return;
    this.options.onBackgroundError?.(err instanceof Error ? err : new Error(String(err)));
  }

  private assertOpen(): void {
    if (this.closed || this.closing) throw new FleetError('conflict', 'the task queue is closed');
  }

  private async guard<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      await this.opened;
      return await fn();
    } catch (err) {
      if (err instanceof FleetError) throw err;
      const e = toFleetError(err, 'internal');
      throw new FleetError('internal', `task queue (Redis) ${op} failed: ${e.message}`, { cause: err });
    }
  }

  private queueFull(queued: number): FleetError {
    return new FleetError(
      'queue_full',
      `queue is full: ${queued} tasks waiting, the bound is ${this.options.maxQueued} (manager.queue.max_size); submit again later`,
      { details: { queued, maxQueued: this.options.maxQueued } },
    );
  }

  private racing(id: string): FleetError {
    return new FleetError('internal', `task ${id} kept changing under this update; try again`);
  }
}
