/**
 * The state and plumbing of the Redis store (docs/distributed.md: One model) that every operation shares:
 * connections, the BullMQ queues and Workers, the event reader, the jobs this process holds, reading a
 * task out of its job, finishing a job under its lease, and the small caches that spare Redis round trips.
 * `routing.ts` adds claiming and session routing on top, `task-queue.ts` the TaskQueue interface.
 *
 * Over 400 lines: the constructor wires every part, and the helpers below (jobs, records, leases, the
 * delayed running marks) are each a few lines that every operation shares.
 */
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { FleetError, toFleetError } from '../../../protocol/errors.js';
import { RedisConnections, type RedisConnectionOptions } from '../../../store/redis-connection.js';
import { isFinal, type TaskRecord } from '../task.js';
import { validateTaskQueueOptions, type TaskQueueOptions } from '../task-queue.js';
import { TaskEvents } from './events.js';
import { accountedStarts, dataOf, parseMark, recordOfJob } from './job-record.js';
import { BullJobs, isLockRefusal, type RawJob } from './jobs.js';
import { checkQueueName, defaultQueueFor, ENDED_QUEUE, FleetKeys, jobIdFor, taskIdOf } from './keys.js';
import { assertCurrentLayout } from './layout.js';
import { checkStalled, every, newSweepState, renewLocks, sweepIndexes, type Held } from './maintenance.js';
import { LOCATE } from './scripts.js';

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

export const MAX_ROUNDS = 20;
/** How long a worker's pinned queue found empty is skipped by its claims unless a job is added to it. */
export const PIN_RECHECK_MS = 1_000;
/**
 * How long after a held task is marked running (or reports progress) the mark is written to its job: a
 * task that ends sooner, as most short ones do, never has it written (its final record says it all).
 */
export const MARK_DELAY_MS = 200;
/** How long a count of the queued jobs serves the bound while far from it (`submit`). */
const BOUND_RECOUNT_MS = 250;

export abstract class RedisQueueCore {
  readonly instanceId: string;
  /** Late results refused because their lease was no longer current (exactly-once completion at work). */
  staleLeaseCount = 0;
  protected readonly connections: RedisConnections;
  protected readonly ownsConnections: boolean;
  protected readonly redis: Redis;
  protected readonly keys: FleetKeys;
  protected readonly jobs: BullJobs;
  protected readonly events: TaskEvents;
  protected readonly now: () => number;
  protected readonly random: () => number;
  protected readonly queueFor: (capability: string) => string;
  protected readonly lockDurationMs: number;
  protected readonly held = new Map<string, Held>();
  protected readonly sweep = newSweepState();
  /** Pinned queue → when it was found empty; → when a job was last added to it. */
  protected readonly pinEmptyAt = new Map<string, number>();
  protected readonly pinAddedAt = new Map<string, number>();
  /** The queues in use, read at most once a second or when a new one is announced. */
  protected queueList: { at: number; names: string[] } | undefined;
  /** The queued jobs over all queues as last counted, plus what this process added since. */
  protected queued: { at: number; n: number } | undefined;
  protected readonly timers: NodeJS.Timeout[] = [];
  protected readonly corruptListeners = new Set<(error: FleetError) => void>();
  protected readonly opened: Promise<void>;
  protected closed = false;
  protected closing: Promise<void> | undefined;

  constructor(protected readonly options: RedisTaskQueueOptions) {
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
      (pairs) => this.readAll(pairs),
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

  // ── jobs ───────────────────────────────────────────────────────────────────────────────────────────

  protected async addJob(queueName: string, t: TaskRecord): Promise<void> {
    this.events.caused(queueName, jobIdFor(t.id), 'added');
    this.onStreamEntry(queueName, 'added');
    if (this.queueList && !this.queueList.names.includes(queueName)) this.queueList = undefined;
    await this.jobs.add(queueName, t);
  }

  /**
   * Puts a task that already has a job elsewhere into `queueName`: an earlier job of its id there goes first,
   * then its location, then the new job (routing it to its session's worker, or back for a retry).
   */
  protected async placeJob(queueName: string, t: TaskRecord): Promise<void> {
    await this.jobs.remove(queueName, t.id);
    await this.locate(t.id, queueName);
    await this.addJob(queueName, t);
  }

  /**
   * A task that ends without a claim holding its job (cancelled while queued, session lost): BullMQ ends
   * only an active job, so its record is added to the ended queue and finished there by whoever takes it.
   */
  protected async endUnclaimed(t: TaskRecord): Promise<void> {
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
   * Jobs the stalled check put back: each lost an attempt with its manager. One whose lost attempt was its
   * last reads as failed, and is ended now rather than left in wait for a claim to find (a claim that took
   * it meanwhile ends it itself); the others get the lost attempt written into their record while the job
   * still names the worker that ran it (the next claim would know only that an attempt was lost).
   */
  protected async endExhausted(queue: string, jobIds: string[]): Promise<void> {
    for (const jobId of jobIds) {
      const taskId = taskIdOf(jobId);
      const raw = await this.jobs.read(queue, taskId);
      const t = raw ? this.recordOrReport(raw) : undefined;
      if (!raw || !t || raw.hash.finishedOn !== undefined) continue;
      if (!isFinal(t.state)) {
        const starts = Number(raw.hash.ats ?? 0);
        if (raw.lock === null && t.state === 'queued' && starts > accountedStarts(raw.hash)) {
          // A claim racing this write reads the same activations and records the same lost attempt.
          await this.jobs
            .job(raw)
            .updateData(dataOf(t, starts))
            .catch((err: unknown) => this.backgroundError(err));
        }
        continue;
      }
      if (!(await this.jobs.remove(queue, taskId))) continue;
      await this.endUnclaimed(t);
      this.events.emit('finished', t);
    }
  }

  /** Finishes a held job with its final record, BullMQ checking the lease; a refusal is `stale_lease`. */
  protected async finish(job: Job, token: string, t: TaskRecord, how: 'completed' | 'failed'): Promise<void> {
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
  protected async fence(job: Job, token: string, t: TaskRecord): Promise<void> {
    if ((await job.extendLock(token, this.lockDurationMs)) !== 1) {
      this.held.delete(t.id);
      throw this.stale(t.id, 'the lock of this lease has lapsed');
    }
  }

  protected async locate(taskId: string, queue: string): Promise<void> {
    await LOCATE.run(this.redis, [this.keys.loc, this.keys.queues, this.keys.newQueues], [taskId, queue]);
  }

  /**
   * Whether this submission counts the queued jobs for the bound. Far below it a count a moment old is
   * good enough (what other managers added since is within the margin); within 10 % of it, every time.
   */
  protected mustCount(): boolean {
    const q = this.queued;
    return !q || Date.now() - q.at >= BOUND_RECOUNT_MS || q.n >= 0.9 * this.options.maxQueued;
  }

  protected markPinEmpty(pinQueue: string, askedAt: number): void {
    // A job added after the question was asked is not missed: the queue is not marked empty then.
    if ((this.pinAddedAt.get(pinQueue) ?? 0) < askedAt) this.pinEmptyAt.set(pinQueue, Date.now());
  }

  /** Every entry of a stream the event reader reads (`new-queues` as the queue name `''`). */
  protected onStreamEntry(queue: string, event: string): void {
    if (queue === '') this.queueList = undefined;
    else if (
      queue.startsWith('pin-') &&
      (event === 'added' || event === 'waiting' || event === 'stalled' || event === 'delayed')
    ) {
      this.pinEmptyAt.delete(queue);
      this.pinAddedAt.set(queue, Date.now());
    }
  }

  protected marksTimer: NodeJS.Timeout | undefined;

  /** Writes the running marks of held tasks MARK_DELAY_MS after the first is made, in one go. */
  protected scheduleMarks(): void {
    if (this.marksTimer || this.closed) return;
    this.marksTimer = setTimeout(() => {
      this.marksTimer = undefined;
      this.flushMarks().catch((err: unknown) => this.backgroundError(err));
    }, MARK_DELAY_MS);
    this.marksTimer.unref();
  }

  protected async flushMarks(): Promise<void> {
    const writes: Promise<unknown>[] = [];
    for (const [id, h] of this.held) {
      const mark = h.mark;
      if (!mark) continue;
      writes.push(
        this.serial(id, async () => {
          // Written only if the task is still held under that lease and nothing newer replaced the mark.
          if (this.held.get(id) !== h || h.mark !== mark) return;
          delete h.mark;
          this.events.caused(h.queue, h.job.id ?? '', 'progress');
          await h.job.updateProgress(mark);
        }).catch((err: unknown) => this.backgroundError(err)),
      );
    }
    await Promise.all(writes);
  }

  protected async renew(): Promise<void> {
    await renewLocks(this.jobs, this.held, this.lockDurationMs);
  }

  // ── records ────────────────────────────────────────────────────────────────────────────────────────

  protected queueName(capability: string): string {
    return checkQueueName(this.queueFor(capability), capability);
  }

  protected async knownQueues(): Promise<string[]> {
    const now = Date.now();
    if (this.queueList && now - this.queueList.at < 1_000) return this.queueList.names;
    const names = await this.redis.smembers(this.keys.queues);
    this.queueList = { at: now, names };
    return names;
  }

  protected async queuePrefixes(): Promise<string[]> {
    return (await this.knownQueues()).filter((q) => q !== ENDED_QUEUE).map((q) => this.keys.bull(q));
  }

  protected async readTask(id: string): Promise<{ task: TaskRecord; raw: RawJob } | undefined> {
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

  /** Tasks' records from their jobs in one round trip, in the order asked; undefined where none is readable. */
  protected async readAll(pairs: { queue: string; taskId: string }[]): Promise<(TaskRecord | undefined)[]> {
    const raws = await this.jobs.readPairs(pairs);
    return raws.map((raw) => (raw ? this.recordOrReport(raw) : undefined));
  }

  protected recordOf(raw: RawJob): TaskRecord {
    return recordOfJob(raw.hash, raw.lock, `${this.keys.bull(raw.queue)}${raw.jobId}`, {
      ...this.options,
      random: this.random,
    });
  }

  protected recordOrReport(raw: RawJob): TaskRecord | undefined {
    try {
      return this.recordOf(raw);
    } catch (err) {
      this.reportCorrupt(err as FleetError);
      return undefined;
    }
  }

  /** The record and job of a current lease; anything else is `stale_lease` and changes nothing. */
  protected async leased(
    id: string,
    leaseToken: string,
    how: 'held' | 'final' | 'fresh' = 'held',
  ): Promise<{ task: TaskRecord; job: Job; queue: string; held: boolean; starts: number }> {
    const held = this.held.get(id);
    if (how !== 'fresh' && held?.token === leaseToken) {
      // The running mark of this lease is in the held record when this process wrote it (`remember`), and a
      // worker that moved to another manager and back is adopted afresh here: only a record still
      // `assigned` may lack a mark written elsewhere (a worker that told another manager it runs): read it.
      if (how === 'held' || held.task.state === 'running')
        return { task: held.task, job: held.job, queue: held.queue, held: true, starts: held.starts };
      const mark = parseMark(
        (await this.redis.hget(`${this.keys.bull(held.queue)}${jobIdFor(id)}`, 'progress')) ?? undefined,
      );
      if (mark && mark.l === leaseToken) {
        held.task.state = 'running';
        if (mark.p) held.task.progress = { ...held.task.progress, ...mark.p };
      }
      return { task: held.task, job: held.job, queue: held.queue, held: true, starts: held.starts };
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
    return {
      task: t,
      job: this.jobs.job(found.raw),
      queue: found.raw.queue,
      held: false,
      starts: Number(found.raw.hash.ats ?? 0),
    };
  }

  protected remember(t: TaskRecord, leaseToken: string): void {
    const held = this.held.get(t.id);
    if (held?.token === leaseToken) held.task = t;
  }

  protected stale(id: string, message: string, t?: TaskRecord): FleetError {
    this.staleLeaseCount++;
    return new FleetError('stale_lease', message.startsWith('task ') ? message : `task ${id}: ${message}`, {
      details: { taskId: id, ...(t ? { state: t.state, attempt: t.attempt } : {}) },
    });
  }

  /** Runs a change of a task held here after the one in progress, so two changes of it never race. */
  protected serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const held = this.held.get(id);
    if (!held) return fn();
    const run = (held.busy ?? Promise.resolve()).then(fn, fn);
    held.busy = run.catch(() => undefined);
    return run;
  }

  protected reportCorrupt(error: FleetError): void {
    for (const listener of this.corruptListeners) listener(error);
  }

  // ── plumbing ───────────────────────────────────────────────────────────────────────────────────────

  protected backgroundError(err: unknown): void {
    if (this.closed) return;
    this.options.onBackgroundError?.(err instanceof Error ? err : new Error(String(err)));
  }

  protected assertOpen(): void {
    if (this.closed || this.closing) throw new FleetError('conflict', 'the task queue is closed');
  }

  protected async guard<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      await this.opened;
      return await fn();
    } catch (err) {
      if (err instanceof FleetError) throw err;
      const e = toFleetError(err, 'internal');
      throw new FleetError('internal', `task queue (Redis) ${op} failed: ${e.message}`, { cause: err });
    }
  }

  protected queueFull(queued: number): FleetError {
    return new FleetError(
      'queue_full',
      `queue is full: ${queued} tasks waiting, the bound is ${this.options.maxQueued} (manager.queue.max_size); submit again later`,
      { details: { queued, maxQueued: this.options.maxQueued } },
    );
  }

  protected racing(id: string): FleetError {
    return new FleetError('internal', `task ${id} kept changing under this update; try again`);
  }
}
