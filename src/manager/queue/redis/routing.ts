/**
 * Claiming and session routing of the Redis store: which queues a claim asks and in what order, what a
 * claim does with the job BullMQ hands it (bind it, hand it back, end a lost attempt, move it to the
 * session's worker), and where a task's job waits (its capability's queue, or its session worker's).
 */
import type { Job } from 'bullmq';
import { FleetError } from '../../../protocol/errors.js';
import { TaskRecordSchema } from '../stored-record.js';
import { copyTask } from '../task-record.js';
import { assignTask, failLostSession } from '../task-transitions.js';
import { isFinal, type TaskRecord } from '../task.js';
import {
  sessionBindingTtlMs,
  sessionLostError,
  type ClaimOptions,
  type SessionBinding,
} from '../task-queue.js';
import { RedisQueueCore } from './core.js';
import { dataOf, loseAttempt, splitData, startedAttempts } from './job-record.js';
import { pinQueueFor, taskIdOf } from './keys.js';
import { BIND_SESSION, PEEK } from './scripts.js';

export abstract class RedisQueueRouting extends RedisQueueCore {
  abstract sessionBinding(sessionId: string): Promise<SessionBinding | undefined>;

  // ── claiming ───────────────────────────────────────────────────────────────────────────────────────

  /**
   * Queues ordered by the job each would hand out next: best priority first, then oldest task; `later`
   * holds the queues with nothing ready but a delayed job still to come.
   */
  protected async rankQueues(queueNames: string[]): Promise<{ ranked: string[]; later: Set<string> }> {
    const later = new Set<string>();
    if (queueNames.length === 1) return { ranked: queueNames, later };
    const flat = (await PEEK.run(
      this.redis,
      [],
      [Date.now(), ...queueNames.map((q) => this.keys.bull(q))],
    )) as (number | string)[];
    const ranked: { name: string; prio: number; at: number }[] = [];
    queueNames.forEach((name, i) => {
      const prio = Number(flat[i * 3]);
      if (prio >= 0) ranked.push({ name, prio, at: Number(flat[i * 3 + 1]) });
      else if (prio === -2) later.add(name);
    });
    ranked.sort((a, b) => a.prio - b.prio || a.at - b.at);
    return { ranked: ranked.map((r) => r.name), later };
  }

  protected async bindClaim(
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
    const { t, jobStarts } = splitData(copyTask(parsed.data));
    // This claim is the job's latest activation; any other the record does not account for was an attempt
    // lost with its manager (job-record.ts), recorded now unless the stalled check's sweep already did.
    const starts = job.attemptsStarted;
    startedAttempts(t, jobStarts, {
      activations: starts - 1,
      lock: null,
      workerId: undefined,
      at: now,
      policy: { ...this.options, random: this.random },
    });
    if (isFinal(t.state)) return this.endClaimed(job, token, queueName, t);
    if (!served.has(t.capability)) {
      await job.updateData(dataOf(t, starts)).catch((err: unknown) => this.backgroundError(err));
      await job.moveToWait(token).catch((err: unknown) => this.backgroundError(err));
      this.onStreamEntry(queueName, 'waiting');
      return 'handed-back';
    }
    if (t.state === 'queued' && t.notBefore > now) {
      // Not due by Fleet's clock (an injected one may run behind Redis's): back to BullMQ's delayed set.
      await job
        .updateData(dataOf(t, starts))
        .then(() => job.moveToDelayed(Date.now() + (t.notBefore - now), token))
        .then(() => this.onStreamEntry(queueName, 'delayed'))
        .catch((err: unknown) => this.backgroundError(err));
      return 'dropped';
    }
    if (t.state === 'assigned' || t.state === 'running') {
      // The previous lease died with its lock (its manager stopped renewing): that attempt is lost.
      if (!loseAttempt(t, now, { ...this.options, random: this.random }))
        return this.endClaimed(job, token, queueName, t);
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
        await this.placeJob(pinQueueFor(holder), t);
        await job.moveToCompleted('"moved"', token, false).catch(() => undefined);
        await this.jobs.remove(queueName, t.id).catch(() => false);
        this.events.emit('routed', t);
        return 'dropped';
      }
      if (outcome === 'lost') {
        failLostSession(t, sessionLostError(t.sessionId, holder), now);
        return this.endClaimed(job, token, queueName, t);
      }
    }
    this.events.claimedHere(queueName, jobId, t);
    // Nothing to write: the job's lock, `pb` and `processedOn`, set by BullMQ in the step that took it, say
    // the task is assigned to this worker under this lease (job-record.ts).
    assignTask(t, workerId, token, now);
    // The job's `active` entry is this claim's: no news here (it is matched when announced, events.ts).
    this.events.caused(queueName, jobId, 'active');
    this.held.set(t.id, { queue: queueName, job, token, task: t, starts });
    this.events.emit('claimed', t);
    return copyTask(t);
  }

  /** Finishes a job this claim took as `failed` with its final record `t` (the task ends without running). */
  private async endClaimed(job: Job, token: string, queueName: string, t: TaskRecord): Promise<'dropped'> {
    this.events.caused(queueName, job.id ?? '', 'failed');
    await this.finish(job, token, t, 'failed').catch(() => undefined);
    this.events.emit('finished', t);
    return 'dropped';
  }

  /**
   * Routes a task about to be queued by the session table: pinned to the live worker holding its session
   * (`sessionWorker`), or failed `session_lost` when that worker is gone (returns its id), or left to any.
   */
  protected async route(t: TaskRecord): Promise<string | undefined> {
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
  protected async relocate(taskId: string): Promise<boolean> {
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
      await this.placeJob(this.jobQueueOf(t), t);
      this.events.emit('routed', t);
    }
    return true;
  }

  /** The BullMQ queue holding a task's job: its session's worker's when pinned, its capability's otherwise. */
  protected jobQueueOf(t: TaskRecord): string {
    return t.sessionWorker !== undefined ? pinQueueFor(t.sessionWorker) : this.queueName(t.capability);
  }
}
