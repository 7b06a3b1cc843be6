/**
 * BullMQ plumbing of the Redis store: one `Queue` (adds, removals, listings) and one manual-processing
 * `Worker` (`new Worker(name, null, …)`: `getNextJob(token)` takes a job under a lock whose token is the
 * lease; the stalled check and lock extension run through its backend) per BullMQ queue, all on the
 * process's one command connection. The Workers get a backend without the dedicated blocking connection a
 * Worker normally opens: Fleet fetches only when a worker has a free slot (late binding), never blocking.
 */
import { createRedisBackend, Job, Queue, Worker, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { TaskRecord } from '../task.js';
import { bullPriority, jobIdFor, type FleetKeys } from './keys.js';
import type { JobHash } from './job-record.js';

export interface RawJob {
  queue: string;
  jobId: string;
  hash: JobHash;
  /** The job's lock value: the current lease token, or null when no attempt holds it. */
  lock: string | null;
}

export class BullJobs {
  private readonly queues = new Map<string, Queue>();
  private readonly workers = new Map<string, Worker>();
  /** Claiming Workers, by queue and Fleet worker: a Worker's name is what BullMQ records as the job's `pb`. */
  private readonly claimers = new Map<string, Worker>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: FleetKeys,
    private readonly opts: {
      lockDurationMs: number;
      stalledIntervalMs: number;
      retainFinished: number;
      onError: (err: unknown) => void;
    },
  ) {}

  queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.redis, prefix: this.keys.prefix });
      queue.on('error', (err) => this.opts.onError(err));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /**
   * The queue's Worker for the stalled check and lock extension, or, given a Fleet worker's id, the one that
   * claims for that worker: BullMQ writes its name into the job (`pb`) in the step that takes the lock, so
   * the claim needs no write of its own to say who holds the task (job-record.ts).
   */
  worker(name: string, claimFor?: string): Worker {
    const key = claimFor === undefined ? name : `${name}\u0000${claimFor}`;
    const cache = claimFor === undefined ? this.workers : this.claimers;
    let worker = cache.get(key);
    if (!worker) {
      const opts: WorkerOptions = {
        ...(claimFor !== undefined ? { name: claimFor } : {}),
        connection: this.redis,
        prefix: this.keys.prefix,
        autorun: false,
        lockDuration: this.opts.lockDurationMs,
        stalledInterval: this.opts.stalledIntervalMs,
        // Fleet counts attempts itself (a lost one is ended when the job is next claimed or read).
        maxStalledCount: 1_000_000,
      };
      worker = new Worker(name, null, opts, (n, o) => createRedisBackend(n, o, {}));
      worker.on('error', (err) => this.opts.onError(err));
      cache.set(key, worker);
    }
    return worker;
  }

  /** Drops the claiming Workers of a Fleet worker that left. */
  async forgetClaimer(workerId: string): Promise<void> {
    const suffix = `\u0000${workerId}`;
    for (const [key, worker] of this.claimers) {
      if (!key.endsWith(suffix)) continue;
      this.claimers.delete(key);
      await worker.close(true).catch(() => undefined);
    }
  }

  /** Adds the job of a queued task (its record as data, accounting for none of the new job's activations). */
  async add(queueName: string, t: TaskRecord): Promise<void> {
    const retain = this.opts.retainFinished > 0 ? { count: this.opts.retainFinished } : true;
    await this.queue(queueName).add(t.capability, t, {
      jobId: jobIdFor(t.id),
      priority: bullPriority(t),
      removeOnComplete: retain,
      removeOnFail: retain,
      stackTraceLimit: 0,
    });
  }

  /** The job's hash and lock in one round trip; undefined when there is no such job. */
  async read(queueName: string, taskId: string): Promise<RawJob | undefined> {
    const jobId = jobIdFor(taskId);
    const key = `${this.keys.bull(queueName)}${jobId}`;
    const rows = await this.redis.pipeline().hgetall(key).get(`${key}:lock`).exec();
    const hash = (rows?.[0]?.[1] ?? {}) as JobHash;
    if (rows?.[0]?.[0]) throw rows[0][0];
    if (Object.keys(hash).length === 0) return undefined;
    return { queue: queueName, jobId, hash, lock: (rows?.[1]?.[1] as string | null) ?? null };
  }

  /** Many jobs of one queue, as `read`. */
  async readMany(queueName: string, jobIds: string[]): Promise<RawJob[]> {
    if (jobIds.length === 0) return [];
    const p = this.redis.pipeline();
    for (const jobId of jobIds) {
      const key = `${this.keys.bull(queueName)}${jobId}`;
      p.hgetall(key).get(`${key}:lock`);
    }
    const rows = (await p.exec()) ?? [];
    const out: RawJob[] = [];
    jobIds.forEach((jobId, i) => {
      const hash = (rows[2 * i]?.[1] ?? {}) as JobHash;
      if (Object.keys(hash).length > 0)
        out.push({ queue: queueName, jobId, hash, lock: (rows[2 * i + 1]?.[1] as string | null) ?? null });
    });
    return out;
  }

  /** Jobs of any queues, as `read`, in one round trip; undefined where there is no such job. */
  async readPairs(pairs: { queue: string; taskId: string }[]): Promise<(RawJob | undefined)[]> {
    if (pairs.length === 0) return [];
    const p = this.redis.pipeline();
    for (const { queue, taskId } of pairs) {
      const key = `${this.keys.bull(queue)}${jobIdFor(taskId)}`;
      p.hgetall(key).get(`${key}:lock`);
    }
    const rows = (await p.exec()) ?? [];
    return pairs.map(({ queue, taskId }, i) => {
      const err = rows[2 * i]?.[0];
      if (err) throw err;
      const hash = (rows[2 * i]?.[1] ?? {}) as JobHash;
      if (Object.keys(hash).length === 0) return undefined;
      const lock = (rows[2 * i + 1]?.[1] as string | null) ?? null;
      return { queue, jobId: jobIdFor(taskId), hash, lock };
    });
  }

  /** A Job object for BullMQ's job calls, from a hash already read. */
  job(raw: RawJob): Job {
    const job = Job.fromJSON(this.queue(raw.queue), raw.hash as never, raw.jobId);
    if (raw.lock) job.token = raw.lock;
    return job;
  }

  /** Removes a job unless it is locked (a claim holds it). True when removed or absent. */
  async remove(queueName: string, taskId: string): Promise<boolean> {
    const removed = await this.queue(queueName).remove(jobIdFor(taskId));
    if (removed === 1) return true;
    return (await this.redis.exists(`${this.keys.bull(queueName)}${jobIdFor(taskId)}`)) === 0;
  }

  all(): Worker[] {
    return [...this.workers.values()];
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.workers.values(), ...this.claimers.values()].map((w) => w.close(true).catch(() => undefined)),
    );
    this.claimers.clear();
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    this.workers.clear();
    this.queues.clear();
  }
}

/** BullMQ's refusal of a job call whose token is not the job's lock (or whose job is gone or not active). */
export function isLockRefusal(err: unknown): boolean {
  const m = err instanceof Error ? err.message : '';
  return /lock|Missing key|not in the active state|Missing job/i.test(m);
}
