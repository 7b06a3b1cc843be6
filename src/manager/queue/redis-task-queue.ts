/**
 * The distributed store: the task queue on Redis, shared by every manager (docs/architecture.md: Stores; docs/distributed.md).
 *
 * Two layers, each doing what it is good at:
 * - **BullMQ** moves the work: one BullMQ queue per worker type (`queueFor(capability)`), a job per task
 *   (job id derived from the task id, so a double add is a no-op), priorities, retry backoff as delayed
 *   jobs, and the job lock — held by the manager that claimed the task, renewed while the task runs. When a
 *   manager dies its locks expire (`lockDurationMs`, about 10 s) and BullMQ's stalled check, run by every
 *   manager, puts its jobs back.
 * - **Fleet's task records** (`<prefix>:fleet:task:<id>`) are the truth about a task: state, attempts and
 *   the current lease. Every change is computed in TypeScript with the same rules as the memory store and
 *   committed by a compare-and-set script, so a late answer carrying an old lease is refused
 *   (`stale_lease`) even when the lease was lost to a lock expiry in another process.
 *
 * The lease token of an attempt *is* the BullMQ lock token of its job, so any manager holding a current
 * lease (or cancelling a task) can finish the job in BullMQ, not only the one that claimed it.
 *
 * Session affinity: a task of a session bound to worker W has its job in W's own BullMQ queue (`pin-…`,
 * named by `sessionWorker` on the record), which only W's claims read, so it waits for W without holding up
 * its capability's queue. The session table (`sess:<id>`) is shared by every manager; a claim binds an unbound
 * session atomically (`BIND_SESSION`) and moves a task whose session another worker holds to that worker's
 * queue.
 *
 * Jobs are fetched with `moveToActive` on the queue's backend (BullMQ's manual-fetching path) rather than a
 * BullMQ `Worker`: a Worker insists on its own blocking connection per queue, which Fleet does not need
 * because it fetches only when a worker has a free slot (late binding) and never blocks.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Job, Queue, type QueueOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { FleetError, toFleetError } from '../../protocol/errors.js';
import type { ErrorBody } from '../../protocol/messages.js';
import { RedisConnections, type RedisConnectionOptions } from '../../store/redis-connection.js';
import { parseStoredTask } from './stored-record.js';
import { BIND_SESSION, COMMIT, LOSE_SESSIONS, PEEK } from './redis-task-scripts.js';
import { copyTask, createTaskRecord } from './task-record.js';
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
} from './task-transitions.js';
import { isFinal, type ArtifactMeta, type TaskRecord, type TaskState, type TaskSubmission } from './task.js';
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
} from './task-queue.js';

export interface RedisTaskQueueOptions extends TaskQueueOptions {
  /** A process's shared connections (preferred), or options to open private ones that `close()` closes. */
  redis: RedisConnections | RedisConnectionOptions;
  /**
   * The BullMQ queue for a capability: in Fleet, the worker type offering it. Every worker that claims from
   * a queue should serve all capabilities that map to it; a task it cannot serve is handed back.
   * @default one queue per capability
   */
  queueFor?: (capability: string) => string;
  /**
   * How long a claimed job stays locked without renewal; a dead manager's tasks return after about this.
   * @default 10000
   */
  lockDurationMs?: number;
  /**
   * How often this manager looks for expired locks (BullMQ's stalled check; one check per interval runs
   * fleet-wide, whichever manager comes first). A dead manager's tasks return within lockDurationMs plus
   * this. @default the smaller of lockDurationMs / 2 and 1 s
   */
  stalledIntervalMs?: number;
  /** A queued task this old with no BullMQ job is re-given one (a manager died between the two writes). @default 5000 */
  orphanGraceMs?: number;
  /** Identifies this process in events; others' events are delivered to local subscribers, own ones not twice. */
  instanceId?: string;
  /** Called with errors of background work (lock renewal, stalled check) that have no caller to throw to. */
  onBackgroundError?: (err: Error) => void;
}

interface Stored {
  task: TaskRecord;
  rev: string;
  /**
   * The record's creation sequence number: revisions restart at 1 when a trimmed task id is submitted
   * again, so a change is committed only if both still match.
   */
  seq: string;
}

interface Held {
  queue: string;
  jobId: string;
  token: string;
  /** Kept so finishing the job needs no extra round trip to load it. */
  job: Job;
  /**
   * The record as this process last committed it: the next change of a held task is computed from it
   * without reading first. The revision check of the commit still catches any change made elsewhere.
   */
  stored: Stored;
  /** The change of this task in progress here, so the next waits for it instead of racing it. */
  busy?: Promise<unknown>;
}

/** A BullMQ job's data: the task id and, when small, the record as submitted (see `SNAPSHOT_MAX_CHARS`). */
interface JobData {
  id: string;
  r?: string;
  q?: string;
  t?: TaskRecord;
}

interface EventMessage {
  o: string;
  k: TaskEvent['kind'];
  t: TaskRecord;
}

type CommitResult =
  | { kind: 'ok'; rev: string; seq: string; json: string }
  | { kind: 'stale' }
  | { kind: 'exists'; id: string }
  | { kind: 'full'; queued: number };

const QUEUE_NAME_RE = /^[A-Za-z0-9._-]{1,100}$/;
const MAX_CAS_ROUNDS = 20;
/** Queued tasks checked for a missing job per sweep round. */
const ORPHAN_SLICE = 500;
/**
 * A record up to this size rides in its job's data, so the first claim of a task reads it from the job
 * that BullMQ hands out instead of asking Redis again. Bigger payloads are not stored twice.
 */
const SNAPSHOT_MAX_CHARS = 16 * 1024;
/**
 * Fleet priority -1000..1000 (higher first) → BullMQ priority 1..4002 (lower first; 0 would bypass
 * priority). Each Fleet priority has two bands, a retried task's ahead of fresh ones, the same order as the
 * memory store's.
 */
const bullPriority = (t: Pick<TaskRecord, 'priority' | 'attempt'>): number =>
  2 * (1001 - t.priority) - (t.attempt > 0 ? 1 : 0);

/** BullMQ refuses integer-looking ids and most ids with ':'; `t_` and `~` (never in a task id) avoid both. */
export const jobIdFor = (taskId: string): string => `t_${taskId.replaceAll(':', '~')}`;
export const taskIdOf = (jobId: string): string => jobId.slice(2).replaceAll('~', ':');

export const defaultQueueFor = (capability: string): string =>
  `cap-${capability.replace(/[^A-Za-z0-9._-]/g, '_')}`;

/** The BullMQ queue of the tasks pinned to one worker (any worker id maps to a valid, distinct name). */
export const pinQueueFor = (workerId: string): string =>
  `pin-${createHash('sha256').update(workerId).digest('hex').slice(0, 40)}`;

/** How long a worker's pinned queue found empty is skipped by its claims unless an event says otherwise. */
const PIN_RECHECK_MS = 1_000;

export class RedisTaskQueue implements TaskQueue {
  readonly instanceId: string;
  private readonly connections: RedisConnections;
  private readonly ownsConnections: boolean;
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private readonly bullPrefix: string;
  private readonly channel: string;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly queueFor: (capability: string) => string;
  private readonly lockDurationMs: number;
  private readonly stalledIntervalMs: number;
  private readonly queues = new Map<string, Queue>();
  private readonly held = new Map<string, Held>();
  private readonly listeners = new Set<(event: TaskEvent) => void>();
  private subscribed: Promise<void> | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private orphanCursor = 0;
  /**
   * Worker → when its pinned queue was last found empty. Claims skip it for `PIN_RECHECK_MS` unless an event
   * (from any manager) shows a task queued for the worker, so tasks without sessions pay no extra round trip.
   */
  private readonly pinEmptyAt = new Map<string, number>();
  private closed = false;
  private closing: Promise<void> | undefined;
  /** How every event this manager publishes begins: `{"o":<instanceId>,`. */
  private readonly ownEventPrefix: string;
  /** Late results refused because their lease was no longer current (exactly-once completion at work). */
  staleLeaseCount = 0;
  private readonly corruptListeners = new Set<(error: FleetError) => void>();

  constructor(private readonly options: RedisTaskQueueOptions) {
    validateTaskQueueOptions(options);
    this.lockDurationMs = options.lockDurationMs ?? 10_000;
    if (!Number.isFinite(this.lockDurationMs) || this.lockDurationMs < 100) {
      throw new FleetError(
        'config_invalid',
        `manager.redis.lock_duration must be at least 100 ms, got ${this.lockDurationMs}`,
      );
    }
    this.stalledIntervalMs =
      options.stalledIntervalMs ?? Math.max(50, Math.min(1_000, Math.round(this.lockDurationMs / 2)));
    this.ownsConnections = !(options.redis instanceof RedisConnections);
    this.connections =
      options.redis instanceof RedisConnections ? options.redis : new RedisConnections(options.redis);
    this.redis = this.connections.get('command');
    this.bullPrefix = this.connections.prefix;
    this.keyPrefix = `${this.connections.prefix}:fleet:`;
    this.channel = `${this.keyPrefix}events`;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.queueFor = options.queueFor ?? defaultQueueFor;
    this.instanceId = options.instanceId ?? randomUUID();
    this.ownEventPrefix = `{"o":${JSON.stringify(this.instanceId)},`;

    this.every(Math.max(50, Math.round(this.lockDurationMs / 3)), () => this.renewLocks());
    this.every(this.stalledIntervalMs, () => this.checkStalled());
    this.every(Math.max(1_000, this.lockDurationMs), () => this.sweepOrphans());
  }

  // ── the TaskQueue interface ────────────────────────────────────────────────────────────────────────

  async submit(submission: TaskSubmission): Promise<SubmitResult> {
    this.assertOpen();
    const now = this.now();
    const record = createTaskRecord(submission, this.options, now);
    return this.guard('submit', async () => {
      // A capability without a usable queue name is refused before anything is written.
      this.queueName(record.capability);
      const lostOn = await this.route(record);
      for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
        const result = await this.commit(
          record,
          undefined,
          lostOn !== undefined ? { create: true, event: 'finished' } : { create: true, bound: true },
        );
        if (result.kind === 'exists') {
          const existing = await this.read(result.id);
          if (!existing) continue; // trimmed between the check and the read: try again
          // A manager that died between committing the record and adding its job left a queued task that
          // nothing would ever claim; the client's resubmission (same id or key) is what repairs it.
          if (existing.task.state === 'queued' && existing.task.attempt === 0)
            await this.ensureJob(existing.task);
          return { task: existing.task, created: false };
        }
        if (result.kind === 'full') throw this.queueFull(result.queued);
        if (result.kind === 'stale') continue;
        if (lostOn !== undefined) return { task: copyTask(record), created: true };
        const data: JobData =
          result.json.length <= SNAPSHOT_MAX_CHARS
            ? { id: record.id, r: result.rev, q: result.seq, t: record }
            : { id: record.id };
        try {
          await this.addJob(record, data);
        } catch (err) {
          await this.abandonSubmission(record.id, err);
          throw err;
        }
        // Announced only once the job exists, so a manager woken by the event finds it.
        this.publish('submitted', record);
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
    return this.guard('get', async () => (await this.read(id))?.task);
  }

  async list(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    this.assertOpen();
    return this.guard('list', async () => {
      const states = filter.state === undefined ? undefined : ([] as TaskState[]).concat(filter.state);
      const scored: { id: string; seq: number }[] = [];
      for (const index of states ? states.map((s) => `state:${s}`) : ['all']) {
        const flat = await this.redis.zrange(this.key(index), 0, -1, 'WITHSCORES');
        for (let i = 0; i + 1 < flat.length; i += 2) scored.push({ id: flat[i]!, seq: Number(flat[i + 1]) });
      }
      scored.sort((a, b) => a.seq - b.seq);
      const limit = filter.limit !== undefined ? Math.max(0, filter.limit) : Infinity;
      const out: TaskRecord[] = [];
      for (let i = 0; i < scored.length && out.length < limit; i += 500) {
        const batch = scored.slice(i, i + 500);
        const jsons = await this.redis
          .pipeline(batch.map((s) => ['hget', this.key(`task:${s.id}`), 'j']))
          .exec()
          .then((rows) => (rows ?? []).map(([, value]) => value as string | null));
        for (const [j, json] of jsons.entries()) {
          if (!json || out.length >= limit) continue;
          // A corrupt record is left out of a list (and reported), not allowed to fail every list.
          const t = this.parseTaskOrReport(json, this.key(`task:${batch[j]!.id}`));
          if (!t) continue;
          if (filter.capability !== undefined && t.capability !== filter.capability) continue;
          if (filter.workerId !== undefined && t.workerId !== filter.workerId) continue;
          out.push(t);
        }
      }
      return out;
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
      // With the real clock BullMQ promotes due retries itself; only an injected clock can run ahead of it.
      if (this.options.now) await this.promoteDue(now);
      const served = new Set(capabilities);
      const queueNames = [...new Set(capabilities.map((c) => this.queueName(c)))];
      const pinQueue = pinQueueFor(workerId);
      const emptyAt = this.pinEmptyAt.get(workerId);
      const withPinned = emptyAt === undefined || Date.now() - emptyAt >= PIN_RECHECK_MS;
      if (withPinned) queueNames.push(pinQueue);
      const ranked = await this.rankQueues(queueNames);
      if (withPinned && !ranked.includes(pinQueue)) this.pinEmptyAt.set(workerId, Date.now());
      for (const queueName of ranked) {
        const queue = this.bullQueue(queueName);
        // A few jobs may turn out to be leftovers (task cancelled or finished meanwhile); skip past them.
        for (let i = 0; i < 50; i++) {
          const token = randomUUID();
          const [jobData, jobId] = (await queue.getBackend().moveToActive(token)) as [
            unknown,
            string | undefined,
          ];
          if (!jobData || !jobId) {
            if (queueName === pinQueue) this.pinEmptyAt.set(workerId, Date.now());
            break;
          }
          const job = Job.fromJSON(queue, jobData as Parameters<typeof Job.fromJSON>[1], jobId);
          job.token = token;
          const outcome = await this.bindClaim(job, queueName, token, served, workerId, now, options);
          if (outcome.kind === 'claimed') return outcome.task;
          if (outcome.kind === 'handed-back') break;
        }
      }
      return undefined;
    });
  }

  async workerGone(workerId: string): Promise<number> {
    this.assertOpen();
    return this.guard('workerGone', async () => {
      await LOSE_SESSIONS.run(this.redis, [this.key(`wsess:${workerId}`)], [this.key('sess:'), workerId]);
      // After the mark: a task routed to the worker from now on is relocated by its submitter's re-check.
      const pinQueue = pinQueueFor(workerId);
      const keys = ['wait', 'prioritized', 'delayed'].map((k) => `${this.bullPrefix}:${pinQueue}:${k}`);
      // Most workers never held a session: no queue object (and no stalled checks) for them.
      if ((await this.redis.exists(...keys)) === 0) return 0;
      const jobs = await this.bullQueue(pinQueue).getJobs(['wait', 'prioritized', 'delayed']);
      let count = 0;
      for (const job of jobs) {
        if (job?.id && (await this.relocate(taskIdOf(job.id)))) count++;
      }
      return count;
    });
  }

  async sessionBinding(sessionId: string): Promise<SessionBinding | undefined> {
    this.assertOpen();
    return this.guard('sessionBinding', async () => {
      const value = await this.redis.get(this.key(`sess:${sessionId}`));
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
        for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
          const stored = await this.leased(id, leaseToken, round > 0);
          const t = copyTask(stored.task);
          const event = markTaskRunning(t, progress, this.now());
          if (!event) return t;
          const result = await this.commit(t, stored, { event });
          if (result.kind !== 'ok') continue;
          this.remember(t, leaseToken, result);
          return copyTask(t);
        }
        throw this.racing(id);
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
        for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
          const stored = await this.leased(id, leaseToken, round > 0);
          const t = copyTask(stored.task);
          completeTask(t, output, artifacts, this.now());
          const result = await this.commit(t, stored, { event: 'finished' });
          if (result.kind !== 'ok') continue;
          await this.finishJob(this.jobQueueOf(t), id, leaseToken, 'completed');
          return t;
        }
        throw this.racing(id);
      }),
    );
  }

  async fail(id: string, leaseToken: string, error: ErrorBody, options: FailOptions): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('fail', () =>
      this.serial(id, async () => {
        for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
          const stored = await this.leased(id, leaseToken, round > 0);
          const t = copyTask(stored.task);
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
              // Its job would wait in the queue of a worker that no longer holds the session.
              moved = binding?.lost !== false || binding.workerId !== t.sessionWorker;
            }
          }
          const result = await this.commit(t, stored, { event: again ? 'retrying' : 'finished' });
          if (result.kind !== 'ok') continue;
          if (again) await this.delayJob(t, leaseToken, now);
          else await this.finishJob(this.jobQueueOf(t), id, leaseToken, 'failed');
          if (moved) await this.relocate(id);
          return t;
        }
        throw this.racing(id);
      }),
    );
  }

  async adopt(id: string, leaseToken: string, workerId: string): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('adopt', () =>
      this.serial(id, async () => {
        const stored = await this.leased(id, leaseToken, true);
        assertLeaseHolder(stored.task, workerId);
        const queueName = this.queueName(stored.task.capability);
        const jobId = jobIdFor(id);
        const queue = this.bullQueue(queueName);
        // The lease is the job's lock token: extending it proves the lock has not lapsed (a lapsed one is
        // being recovered by the stalled check, and its task will run again) and keeps it from lapsing now.
        const failed = await queue.getBackend().extendLocks([jobId], [leaseToken], this.lockDurationMs);
        const job = failed.length === 0 ? await Job.fromId(queue, jobId) : undefined;
        if (!job) {
          this.staleLeaseCount++;
          throw new FleetError('stale_lease', `task ${id}: the lock of this lease has lapsed`, {
            details: { taskId: id, state: stored.task.state, attempt: stored.task.attempt },
          });
        }
        this.held.set(id, { queue: queueName, jobId, token: leaseToken, job, stored });
        return copyTask(stored.task);
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
      for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
        const stored = await this.read(id);
        if (!stored) throw new FleetError('not_found', `no task with id ${id}`);
        if (isFinal(stored.task.state)) {
          throw new FleetError('conflict', `task ${id} is already ${stored.task.state}; nothing to cancel`);
        }
        const t = copyTask(stored.task);
        const wasQueued = t.state === 'queued';
        const lease = t.leaseToken;
        cancelTask(t, reason, this.now());
        const result = await this.commit(t, stored, { event: 'finished' });
        if (result.kind !== 'ok') continue;
        // Best effort: a job this cannot remove (claimed in a race) is dropped by the claim, which sees the
        // final record.
        if (wasQueued) await this.removeJob(this.jobQueueOf(t), id);
        else if (lease) await this.finishJob(this.jobQueueOf(t), id, lease, 'failed');
        return t;
      }
      throw this.racing(id);
    });
  }

  async retry(id: string): Promise<TaskRecord> {
    this.assertOpen();
    return this.guard('retry', async () => {
      for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
        const stored = await this.read(id);
        if (!stored) throw new FleetError('not_found', `no task with id ${id}`);
        assertRetryable(stored.task);
        const t = copyTask(stored.task);
        resetForRetry(t, this.now());
        const lostOn = await this.route(t);
        const result = await this.commit(
          t,
          stored,
          lostOn !== undefined ? { event: 'finished' } : { bound: true },
        );
        if (result.kind === 'full') throw this.queueFull(result.queued);
        if (result.kind !== 'ok') continue;
        if (lostOn !== undefined) return t;
        // A leftover job of an earlier round (normally removed when it finished) would swallow the add.
        await this.removeJob(this.jobQueueOf(stored.task), id);
        await this.removeJob(this.jobQueueOf(t), id);
        await this.addJob(t);
        this.publish('retrying', t);
        return t;
      }
      throw this.racing(id);
    });
  }

  async depth(capability?: string): Promise<number> {
    this.assertOpen();
    return this.guard('depth', async () =>
      capability === undefined
        ? this.redis.zcard(this.key('queued'))
        : this.redis.scard(this.key(`queued:${capability}`)),
    );
  }

  async nextReadyAt(): Promise<number | undefined> {
    this.assertOpen();
    return this.guard('nextReadyAt', async () => {
      const now = this.now();
      const head = await this.redis.zrangebyscore(
        this.key('backoff'),
        `(${now}`,
        '+inf',
        'WITHSCORES',
        'LIMIT',
        0,
        1,
      );
      return head[1] !== undefined ? Number(head[1]) : undefined;
    });
  }

  subscribe(listener: (event: TaskEvent) => void): () => void {
    this.assertOpen();
    this.listeners.add(listener);
    this.subscribed ??= this.startSubscriber();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once events from other managers are being received (subscribe() starts listening lazily). */
  async ready(): Promise<void> {
    await this.redis.ping();
    await this.subscribed;
  }

  /**
   * Graceful shutdown (docs/architecture.md: Stores): tasks this manager still holds go back to the queue at once, with their
   * attempt not counted, instead of waiting for their locks to expire. The caller drains first; whatever is
   * still running here after that would finish into a stale lease.
   */
  async handBack(): Promise<number> {
    let count = 0;
    for (const [taskId, held] of [...this.held]) {
      try {
        if (await this.handBackOne(taskId, held)) count++;
      } catch (err) {
        this.backgroundError(err);
      }
    }
    return count;
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.closed) await this.handBack().catch(() => 0);
      this.closed = true;
      for (const t of this.timers) clearInterval(t);
      this.listeners.clear();
      await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
      this.queues.clear();
      if (this.subscribed) {
        await this.subscribed.catch(() => undefined);
        const sub = this.connections.get('subscriber');
        sub.off('message', this.onMessage);
        await sub.unsubscribe(this.channel).catch(() => undefined);
      }
      if (this.ownsConnections) await this.connections.close();
    })();
    return this.closing;
  }

  /**
   * What a crash looks like to the other managers: background work stops and the connections drop without
   * handing anything back, so held tasks return only through lock expiry. For failover tests and drills.
   */
  async abandon(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.listeners.clear();
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

  /** Runs a change of a task held here after the one in progress, so two changes of it never race. */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const held = this.held.get(id);
    if (!held) return fn();
    const run = (held.busy ?? Promise.resolve()).then(fn, fn);
    held.busy = run.catch(() => undefined);
    return run;
  }

  /** Keeps what was just committed for a held task, so its next change needs no read. */
  private remember(t: TaskRecord, leaseToken: string, result: { rev: string; seq: string }): void {
    const held = this.held.get(t.id);
    if (held?.token === leaseToken) held.stored = { task: t, rev: result.rev, seq: result.seq };
  }

  // ── claiming ───────────────────────────────────────────────────────────────────────────────────────

  /** Queues ordered by the job each would hand out next: best priority first, then oldest task. */
  private async rankQueues(queueNames: string[]): Promise<string[]> {
    if (queueNames.length === 1) return queueNames;
    const flat = (await PEEK.run(
      this.redis,
      [],
      [Date.now(), `${this.keyPrefix}task:`, ...queueNames.map((q) => `${this.bullPrefix}:${q}:`)],
    )) as (number | string)[];
    const ranked: { name: string; prio: number; seq: number }[] = [];
    queueNames.forEach((name, i) => {
      const prio = Number(flat[i * 3]);
      if (prio >= 0) ranked.push({ name, prio, seq: Number(flat[i * 3 + 1]) });
    });
    ranked.sort((a, b) => a.prio - b.prio || a.seq - b.seq);
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
  ): Promise<{ kind: 'claimed'; task: TaskRecord } | { kind: 'dropped' } | { kind: 'handed-back' }> {
    const taskId = taskIdOf(job.id ?? '');
    const snapshot = job.data as JobData | undefined;
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      // The record as submitted, carried by the job: right for every first attempt, and a commit computed
      // from an outdated one is refused by the revision check and redone from a fresh read.
      const stored =
        round === 0 && snapshot?.t && snapshot.r && snapshot.q && snapshot.t.id === taskId
          ? { task: snapshot.t, rev: snapshot.r, seq: snapshot.q }
          : await this.read(taskId);
      if (!stored || isFinal(stored.task.state) || this.jobQueueOf(stored.task) !== queueName) {
        // Final, or a leftover of a task that moved to another queue (pinned to its session's worker).
        await this.finishBullJob(job, token, 'completed');
        return { kind: 'dropped' };
      }
      if (!served.has(stored.task.capability)) {
        await job.moveToWait(token).catch((err: unknown) => this.backgroundError(err));
        return { kind: 'handed-back' };
      }
      if (stored.task.state === 'queued' && stored.task.notBefore > now) {
        // Not due by Fleet's clock (an injected one may run behind Redis's): back to BullMQ's delayed set.
        await this.bullQueue(queueName)
          .getBackend()
          .moveToDelayed(job.id ?? '', Date.now(), stored.task.notBefore - now, token, { skipAttempt: true })
          .catch((err: unknown) => this.backgroundError(err));
        return { kind: 'dropped' };
      }
      const t = copyTask(stored.task);
      if (t.state === 'assigned' || t.state === 'running') {
        // The previous lease died with its lock (its manager stopped renewing): that attempt is lost.
        if (!this.loseAttempt(t, now)) {
          const result = await this.commit(t, stored, { event: 'finished' });
          if (result.kind !== 'ok') continue;
          await this.finishBullJob(job, token, 'failed');
          return { kind: 'dropped' };
        }
      }
      if (t.sessionId !== undefined) {
        const [outcome, holder = ''] = (await BIND_SESSION.run(
          this.redis,
          [this.key(`sess:${t.sessionId}`), this.key(`wsess:${workerId}`)],
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
          const result = await this.commit(t, stored, { event: 'routed' });
          if (result.kind !== 'ok') continue;
          await this.finishBullJob(job, token, 'completed');
          await this.addJob(t);
          return { kind: 'dropped' };
        }
        if (outcome === 'lost') {
          failLostSession(t, sessionLostError(t.sessionId, holder), now);
          const result = await this.commit(t, stored, { event: 'finished' });
          if (result.kind !== 'ok') continue;
          await this.finishBullJob(job, token, 'failed');
          return { kind: 'dropped' };
        }
      }
      assignTask(t, workerId, token, now);
      const result = await this.commit(t, stored, { event: 'claimed' });
      if (result.kind !== 'ok') continue;
      this.held.set(taskId, {
        queue: queueName,
        jobId: job.id ?? '',
        token,
        job,
        stored: { task: t, rev: result.rev, seq: result.seq },
      });
      return { kind: 'claimed', task: copyTask(t) };
    }
    await job.moveToWait(token).catch(() => undefined);
    return { kind: 'handed-back' };
  }

  /**
   * Routes a task about to be queued by the session table: pinned to the live worker holding its session
   * (`sessionWorker`), or failed `session_lost` when that worker is gone (returns its id), or left to any
   * worker.
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
   * Re-routes a queued task pinned to a worker whose binding changed (gone, or the session moved): it ends
   * `session_lost`, or waits for the session's new worker, or goes back to any worker. Returns whether it
   * moved or ended. A job a claim holds is left to that claim, which drops it as a leftover.
   */
  private async relocate(taskId: string): Promise<boolean> {
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      const stored = await this.read(taskId);
      if (!stored || stored.task.state !== 'queued' || stored.task.sessionWorker === undefined) return false;
      const t = copyTask(stored.task);
      const from = this.jobQueueOf(t);
      const lostOn = await this.route(t);
      if (lostOn === undefined && this.jobQueueOf(t) === from) return false;
      t.updatedAt = this.now();
      const result = await this.commit(t, stored, { event: lostOn !== undefined ? 'finished' : 'routed' });
      if (result.kind !== 'ok') continue;
      await this.removeJob(from, taskId);
      if (lostOn === undefined) await this.addJob(t);
      return true;
    }
    throw this.racing(taskId);
  }

  /** The BullMQ queue holding a task's job: its session's worker's when pinned, its capability's otherwise. */
  private jobQueueOf(t: TaskRecord): string {
    return t.sessionWorker !== undefined ? pinQueueFor(t.sessionWorker) : this.queueName(t.capability);
  }

  /**
   * Ends an attempt whose lease was lost with its manager; true when the task may run again (it is then
   * `queued`), false when that was its last attempt (it is then `failed`).
   */
  private loseAttempt(t: TaskRecord, now: number): boolean {
    const error: ErrorBody = {
      code: 'worker_lost',
      message: 'the manager running the task stopped renewing its lease (lock expired)',
      retryable: true,
    };
    const decision = failTask(
      t,
      error,
      { outcome: 'worker_lost' },
      { ...this.options, random: this.random },
      now,
    );
    delete t.workerId;
    delete t.leaseToken;
    // BullMQ already waited out the lock; another backoff on top would only delay recovery.
    if (decision.kind === 'retry') t.notBefore = now;
    return decision.kind === 'retry';
  }

  /** Promotes retries that are due by Fleet's clock but still in BullMQ's delayed set. */
  private async promoteDue(now: number): Promise<void> {
    const due = await this.redis.zrangebyscore(this.key('backoff'), '-inf', now, 'LIMIT', 0, 100);
    if (due.length === 0) return;
    await Promise.all(
      due.map(async (taskId) => {
        const stored = await this.read(taskId);
        if (stored?.task.state === 'queued') {
          const queue = this.bullQueue(this.jobQueueOf(stored.task));
          // Already promoted by BullMQ itself is fine: the job is then simply not in the delayed set.
          await queue
            .getBackend()
            .promote(jobIdFor(taskId))
            .catch(() => undefined);
        }
        await this.redis.zrem(this.key('backoff'), taskId);
      }),
    );
  }

  // ── background: locks and stalled jobs ─────────────────────────────────────────────────────────────

  private async renewLocks(): Promise<void> {
    const byQueue = new Map<string, Held[]>();
    for (const h of this.held.values()) {
      const list = byQueue.get(h.queue) ?? [];
      list.push(h);
      byQueue.set(h.queue, list);
    }
    for (const [queueName, list] of byQueue) {
      const failed = await this.bullQueue(queueName)
        .getBackend()
        .extendLocks(
          list.map((h) => h.jobId),
          list.map((h) => h.token),
          this.lockDurationMs,
        );
      // A lock that could not be extended was lost (expired and recovered elsewhere): the record's fence
      // will refuse the old lease, nothing more to do here than to forget it.
      for (const jobId of failed) this.held.delete(taskIdOf(jobId));
    }
  }

  private async checkStalled(): Promise<void> {
    const names = await this.redis.smembers(this.key('queues'));
    for (const name of names) {
      if (!QUEUE_NAME_RE.test(name)) continue;
      const stalled = await this.bullQueue(name).getBackend().moveStalledJobsToWait();
      for (const jobId of stalled) await this.recoverStalled(name, jobId);
    }
  }

  /**
   * A manager that died between saving a task and adding its BullMQ job left a queued task that nothing would
   * ever claim. Each round checks a slice of the queued index (cycling through it) and re-adds missing jobs,
   * so such a task runs within a few rounds even if its client never submits again.
   */
  private async sweepOrphans(): Promise<void> {
    const ids = await this.redis.zrange(
      this.key('state:queued'),
      this.orphanCursor,
      this.orphanCursor + ORPHAN_SLICE - 1,
    );
    this.orphanCursor = ids.length < ORPHAN_SLICE ? 0 : this.orphanCursor + ORPHAN_SLICE;
    if (ids.length === 0) return;
    const rows =
      (await this.redis.pipeline(ids.map((id) => ['hget', this.key(`task:${id}`), 'j'])).exec()) ?? [];
    const now = this.now();
    const candidates: TaskRecord[] = [];
    for (const [i, [, json]] of rows.entries()) {
      if (typeof json !== 'string') continue;
      const t = this.parseTaskOrReport(json, this.key(`task:${ids[i]}`));
      if (!t) continue;
      // Young tasks may be between their save and their job's add: leave them to their submitter.
      if (t.state === 'queued' && now - t.updatedAt >= (this.options.orphanGraceMs ?? 5_000))
        candidates.push(t);
    }
    if (candidates.length === 0) return;
    const exists =
      (await this.redis
        .pipeline(
          candidates.map((t) => ['exists', `${this.bullPrefix}:${this.jobQueueOf(t)}:${jobIdFor(t.id)}`]),
        )
        .exec()) ?? [];
    for (let i = 0; i < candidates.length; i++) {
      if (exists[i]?.[1] === 0) await this.ensureJob(candidates[i]!);
    }
  }

  /** A job BullMQ put back after its lock expired: make the record say so (queued, or failed if out of attempts). */
  private async recoverStalled(queueName: string, jobId: string): Promise<void> {
    const taskId = taskIdOf(jobId);
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      const stored = await this.read(taskId);
      if (!stored || (stored.task.state !== 'assigned' && stored.task.state !== 'running')) return;
      // Claimed again already: that claim ended the lost attempt itself.
      if ((await this.redis.exists(`${this.bullPrefix}:${queueName}:${jobId}:lock`)) === 1) return;
      const t = copyTask(stored.task);
      const now = this.now();
      const again = this.loseAttempt(t, now);
      const result = await this.commit(t, stored, { event: again ? 'retrying' : 'finished' });
      if (result.kind !== 'ok') continue;
      if (!again)
        await this.bullQueue(queueName)
          .remove(jobId)
          .catch(() => 0);
      return;
    }
  }

  private async handBackOne(taskId: string, held: Held): Promise<boolean> {
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      const stored = await this.read(taskId);
      if (!stored || stored.task.leaseToken !== held.token || isFinal(stored.task.state)) break;
      const t = copyTask(stored.task);
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
      const result = await this.commit(t, stored, { event: 'retrying' });
      if (result.kind !== 'ok') continue;
      const job = await Job.fromId(this.bullQueue(held.queue), held.jobId);
      if (job) await job.moveToWait(held.token).catch((err: unknown) => this.backgroundError(err));
      this.held.delete(taskId);
      return true;
    }
    this.held.delete(taskId);
    return false;
  }

  // ── BullMQ jobs ────────────────────────────────────────────────────────────────────────────────────

  private async delayJob(t: TaskRecord, token: string, now: number): Promise<void> {
    const queueName = this.held.get(t.id)?.queue ?? this.jobQueueOf(t);
    this.held.delete(t.id);
    // Into the retried band of its priority: BullMQ reads the job's priority when it promotes the job.
    await this.redis
      .hset(`${this.bullPrefix}:${queueName}:${jobIdFor(t.id)}`, 'priority', bullPriority(t))
      .catch((err: unknown) => this.backgroundError(err));
    await this.bullQueue(queueName)
      .getBackend()
      .moveToDelayed(jobIdFor(t.id), Date.now(), Math.max(0, t.notBefore - now), token, { skipAttempt: true })
      .catch((err: unknown) => this.backgroundError(err));
  }

  /** Finishes (and removes) the job of a task whose record is final, with the lease that holds its lock. */
  private async finishJob(
    queueName: string,
    taskId: string,
    token: string,
    how: 'completed' | 'failed',
  ): Promise<void> {
    const held = this.held.get(taskId);
    this.held.delete(taskId);
    const job =
      held?.token === token
        ? held.job
        : await Job.fromId(this.bullQueue(queueName), jobIdFor(taskId)).catch(() => undefined);
    if (job) await this.finishBullJob(job, token, how);
  }

  private async finishBullJob(job: Job, token: string, how: 'completed' | 'failed'): Promise<void> {
    try {
      if (how === 'completed') await job.moveToCompleted(null, token, false);
      else await job.moveToFailed(new Error('finished by Fleet'), token, false);
    } catch {
      // The lock was lost meanwhile: the job went back to wait, and the next claim drops it (record final).
    }
  }

  /** Adds the job of a queued task when it is missing (an add with its job id is a no-op). */
  private async ensureJob(t: TaskRecord): Promise<void> {
    const queue = this.bullQueue(this.jobQueueOf(t));
    if (await queue.getJob(jobIdFor(t.id))) return;
    await this.addJob(t);
    this.publish('submitted', t);
  }

  /** The BullMQ job of a queued task: its id derived from the task's, in its priority band, gone once done. */
  private async addJob(t: TaskRecord, data: JobData = { id: t.id }): Promise<void> {
    await this.bullQueue(this.jobQueueOf(t)).add(t.capability, data, {
      jobId: jobIdFor(t.id),
      priority: bullPriority(t),
      removeOnComplete: true,
      removeOnFail: true,
    });
  }

  private async removeJob(queueName: string, taskId: string): Promise<void> {
    await this.bullQueue(queueName)
      .remove(jobIdFor(taskId))
      .catch(() => 0);
  }

  private queueName(capability: string): string {
    const name = this.queueFor(capability);
    if (!QUEUE_NAME_RE.test(name)) {
      throw new FleetError(
        'config_invalid',
        `queue name "${name}" for capability "${capability}" must be 1-100 of letters, digits and ._-`,
      );
    }
    return name;
  }

  private bullQueue(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      // lockDuration/maxStalledCount/stalledInterval are read by the backend's moveToActive and stalled check
      // from the queue's options (BullMQ's manual-fetching path without a Worker).
      const opts = {
        connection: this.redis,
        prefix: this.bullPrefix,
        lockDuration: this.lockDurationMs,
        stalledInterval: this.stalledIntervalMs,
        // Fleet counts attempts itself; BullMQ must never fail a job for stalling.
        maxStalledCount: 1_000_000,
      } as QueueOptions;
      queue = new Queue(name, opts);
      queue.on('error', (err) => this.backgroundError(err));
      this.queues.set(name, queue);
      void this.redis.sadd(this.key('queues'), name).catch((err: unknown) => this.backgroundError(err));
    }
    return queue;
  }

  // ── records ────────────────────────────────────────────────────────────────────────────────────────

  private key(suffix: string): string {
    return `${this.keyPrefix}${suffix}`;
  }

  private async read(id: string): Promise<Stored | undefined> {
    const [rev, json, seq] = await this.redis.hmget(this.key(`task:${id}`), 'r', 'j', 'q');
    if (!rev || !json || !seq) return undefined;
    const key = this.key(`task:${id}`);
    try {
      return { rev, seq, task: parseStoredTask(json, key) };
    } catch (err) {
      this.reportCorrupt(err as FleetError);
      throw err;
    }
  }

  onCorruptRecord(listener: (error: FleetError) => void): () => void {
    this.corruptListeners.add(listener);
    return () => this.corruptListeners.delete(listener);
  }

  private reportCorrupt(error: FleetError): void {
    for (const listener of this.corruptListeners) listener(error);
  }

  /** The record, or undefined (reported) when it does not validate. */
  private parseTaskOrReport(json: string, key: string): TaskRecord | undefined {
    try {
      return parseStoredTask(json, key);
    } catch (err) {
      this.reportCorrupt(err as FleetError);
      return undefined;
    }
  }

  /** The record if `leaseToken` is its current lease; anything else is `stale_lease` and changes nothing. */
  private async leased(id: string, leaseToken: string, fresh = false): Promise<Stored> {
    const held = this.held.get(id);
    const stored = !fresh && held?.token === leaseToken ? held.stored : await this.read(id);
    if (!stored) throw new FleetError('not_found', `no task with id ${id}`);
    const t = stored.task;
    if (isFinal(t.state)) {
      this.staleLeaseCount++;
      throw new FleetError(
        'stale_lease',
        `task ${id} is already ${t.state}; the lease is no longer current`,
        {
          details: { taskId: id, state: t.state },
        },
      );
    }
    if ((t.state !== 'assigned' && t.state !== 'running') || t.leaseToken !== leaseToken) {
      this.staleLeaseCount++;
      throw new FleetError(
        'stale_lease',
        `task ${id}: the lease is not current (task is ${t.state}, attempt ${t.attempt})`,
        {
          details: { taskId: id, state: t.state, attempt: t.attempt },
        },
      );
    }
    return stored;
  }

  private async commit(
    t: TaskRecord,
    previous: Stored | undefined,
    opts: { create?: boolean; bound?: boolean; event?: TaskEvent['kind'] },
  ): Promise<CommitResult> {
    const json = JSON.stringify(t);
    // The script publishes this head followed by the record's JSON and `}`: the record is neither
    // serialised nor sent twice.
    const eventHead = opts.event ? `${this.ownEventPrefix}"k":${JSON.stringify(opts.event)},"t":` : '';
    const now = this.now();
    const reply = (await COMMIT.run(
      this.redis,
      [this.key(`task:${t.id}`)],
      [
        opts.create ? '' : (previous?.rev ?? '0'),
        json,
        previous?.task.state ?? '',
        t.state,
        t.capability,
        t.notBefore,
        t.idempotencyKey ?? '',
        this.keyPrefix,
        t.id,
        opts.bound ? this.options.maxQueued : '',
        this.options.retainFinished,
        isFinal(t.state) ? (t.finishedAt ?? now) : '',
        t.state === 'queued' && t.notBefore > now ? t.notBefore : '',
        this.channel,
        eventHead,
        opts.create ? '' : (previous?.seq ?? ''),
      ],
    )) as [string, string, string?];
    switch (reply[0]) {
      case 'ok':
        if (opts.event) this.emitLocal(opts.event, t);
        return { kind: 'ok', rev: reply[1], seq: reply[2] ?? '', json };
      case 'exists':
        return { kind: 'exists', id: reply[1] };
      case 'full':
        return { kind: 'full', queued: Number(reply[1]) };
      default:
        return { kind: 'stale' };
    }
  }

  /** The job could not be enqueued: the record must not claim a task exists that nobody will run. */
  private async abandonSubmission(id: string, cause: unknown): Promise<void> {
    const stored = await this.read(id).catch(() => undefined);
    if (!stored) return;
    const t = copyTask(stored.task);
    const now = this.now();
    t.state = 'failed';
    t.error = {
      code: 'internal',
      message: `could not enqueue the task: ${(cause as Error).message}`,
      retryable: true,
    };
    t.finishedAt = now;
    t.updatedAt = now;
    await this.commit(t, stored, {}).catch(() => undefined);
  }

  // ── events ─────────────────────────────────────────────────────────────────────────────────────────

  private publish(kind: TaskEvent['kind'], t: TaskRecord): void {
    this.emitLocal(kind, t);
    const message = `${this.ownEventPrefix}"k":${JSON.stringify(kind)},"t":${JSON.stringify(t)}}`;
    void this.redis.publish(this.channel, message).catch((err: unknown) => this.backgroundError(err));
  }

  private emitLocal(kind: TaskEvent['kind'], t: TaskRecord): void {
    // A task queued for a worker: that worker's next claim looks at its pinned queue again.
    if (t.sessionWorker !== undefined && t.state === 'queued') this.pinEmptyAt.delete(t.sessionWorker);
    if (this.listeners.size === 0) return;
    for (const listener of this.listeners) {
      try {
        listener({ kind, task: copyTask(t) });
      } catch {
        // A listener's bug must not undo or block a state change that has already happened.
      }
    }
  }

  private async startSubscriber(): Promise<void> {
    const sub = this.connections.get('subscriber');
    sub.on('message', this.onMessage);
    await sub.subscribe(this.channel);
  }

  private readonly onMessage = (channel: string, message: string): void => {
    if (channel !== this.channel || this.listeners.size === 0) return;
    // Redis echoes this manager's own events back; they were delivered locally already. Recognising them
    // by their head spares parsing half of all event traffic.
    if (message.startsWith(this.ownEventPrefix)) return;
    let parsed: EventMessage;
    try {
      parsed = JSON.parse(message) as EventMessage;
    } catch {
      return; // not ours to interpret; another writer on the channel must not take the manager down
    }
    if (parsed.o === this.instanceId || typeof parsed.t?.id !== 'string') return;
    this.emitLocal(parsed.k, parsed.t);
  };

  // ── plumbing ───────────────────────────────────────────────────────────────────────────────────────

  private every(ms: number, fn: () => Promise<void>): void {
    let running = false;
    const timer = setInterval(() => {
      if (running || this.closed) return;
      running = true;
      fn()
        .catch((err: unknown) => this.backgroundError(err))
        .finally(() => {
          running = false;
        });
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private backgroundError(err: unknown): void {
    if (this.closed) return;
    this.options.onBackgroundError?.(err instanceof Error ? err : new Error(String(err)));
  }

  private assertOpen(): void {
    if (this.closed || this.closing) throw new FleetError('conflict', 'the task queue is closed');
  }

  private async guard<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
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
