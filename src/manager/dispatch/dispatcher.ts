/**
 * The dispatcher binds queued tasks to worker slots (late binding) and turns worker messages into task state.
 *
 * - A task leaves the queue only when a worker has a free slot: the strategy picks the worker among those
 *   with room, then the queue hands over its best task for that worker's capabilities with a fresh lease.
 * - Every message about a task is checked against the lease this manager holds; anything else is a stale
 *   result (counted, dropped). The queue checks the lease again, so two managers cannot both complete a task.
 * - A worker's death re-queues its in-flight tasks at once (no stall timeout), through the retry policy.
 * - The manager keeps its own deadline (task timeout + grace) in case a worker never answers.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { FleetError, toFleetError } from '../../protocol/errors.js';
import { checkJsonLimits, type JsonLimits } from '../../protocol/json-limits.js';
import type { ErrorBody, WorkerToManager } from '../../protocol/messages.js';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import { selectOptimalWorker } from '../balancing/index.js';
import type { BalancingStrategy, Candidate } from '../balancing/strategy.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { WebSocketWorkerInterface, WorkerConnection } from '../connect/worker-interface.js';
import type { ManagerMetrics } from '../metrics/manager-metrics.js';
import type { TaskQueue } from '../queue/task-queue.js';
import type { ArtifactMeta, TaskRecord } from '../queue/task.js';
import { statusOf, type LiveWorker, type WorkerRegistry } from '../registry/worker-registry.js';
import { CLOSE_CODES } from '../../protocol/transport.js';
import { reconcile, reportedLeases, type ReconcileHost } from './reconciler.js';

interface Lease {
  taskId: string;
  leaseToken: string;
  attempt: number;
  workerId: string;
  capability: string;
  dispatchedAt: number;
  timer: TimerHandle;
  cancelling: boolean;
  /** Its worker was lost; held for the worker's reconnect (reconciler.ts) instead of failed at once. */
  suspended?: boolean;
}

export interface ProgressEvent {
  taskId: string;
  attempt: number;
  workerId: string;
  percent?: number;
  message?: string;
  log?: { stream: string; data: string };
  partial?: unknown;
}

export interface DispatcherOptions {
  queue: TaskQueue;
  registry: WorkerRegistry;
  /** The only way to the workers: the connections live there, not here. */
  workers: WebSocketWorkerInterface;
  strategy: BalancingStrategy;
  artifacts: ArtifactStore;
  clock: Clock;
  logger: Logger;
  metrics?: ManagerMetrics;
  /** How long past a task's timeout the manager waits for the worker's own answer. */
  graceMs?: number;
  /** Whether a capability's tasks may run twice (config `idempotent`); only those are retried after a timeout. */
  isIdempotent?: (capability: string) => boolean;
  /** The shape a worker's output and partial results must keep to be stored and streamed. */
  outputLimits?: JsonLimits;
  /**
   * How long a lost worker's tasks are held for it to reconnect and report them, before they are re-queued.
   * The manager ends the hold early when a dial of the worker fails (`releaseHeld`). 0: re-queue at once.
   */
  reconnectHoldMs?: number;
  /**
   * Told when a lost worker's tasks go on hold: the manager dials the worker again at once, so a live one
   * reconnects (and is reconciled) and a dead one's refused dial ends the hold (`releaseHeld`) without
   * waiting for the next discovery round.
   */
  onHold?: (workerId: string) => void;
}

/** Claims in the air at once per worker group. */
const MAX_PARALLEL_CLAIMS = 16;

export class Dispatcher {
  private readonly leases = new Map<string, Lease>();
  private readonly leasesByWorker = new Map<string, Set<string>>();
  private readonly events = new EventEmitter();
  private pumping = false;
  /** Tasks made ready since the last pump began (events seen): how many claims its first round sends. */
  private readyHint = 0;
  /** Per worker, slots held by claims in the air (not yet tasks: not in the worker's inFlight). */
  private readonly claiming = new Map<string, number>();
  private readonly groupKeys = new WeakMap<string[], string>();
  private pumpAgain = false;
  private wake: { at: number; timer: TimerHandle } | undefined;
  private stopped = false;
  /** A graceful stop: results are still taken, no new task is handed out. */
  private paused = false;
  private readonly unsubscribeQueue: () => void;
  /** Per worker: the reconciliation of its hello's report, which its other frames wait for. */
  private readonly reconciling = new Map<string, Promise<unknown>>();
  /** Workers that sent a heartbeat on their current connection: only these are waited for once lost. */
  private readonly beating = new Set<string>();
  /** Per lost worker: its leases held for a reconnect, and the end of the hold. */
  private readonly held = new Map<
    string,
    { leases: Lease[]; timer: TimerHandle; reason: string; felled: boolean }
  >();

  constructor(private readonly o: DispatcherOptions) {
    this.events.setMaxListeners(0);
    // Cancels may be made on another manager (shared Redis): act on any final state of a task we run.
    const unsubscribeEvents = o.queue.subscribe((event) => {
      if (
        !event.late &&
        (event.kind === 'submitted' || event.kind === 'retrying' || event.kind === 'routed')
      ) {
        this.readyHint++;
        this.schedulePump();
      }
      if (event.kind === 'finished' && event.task.state === 'cancelled') {
        const lease = this.leases.get(event.task.id);
        if (lease && !lease.cancelling) this.cancelOnWorker(lease, 'cancelled by caller');
      }
    });
    const unsubscribeWork = o.queue.onRemoteWork?.((n) => {
      this.readyHint += n;
      this.schedulePump();
    });
    this.unsubscribeQueue = () => {
      unsubscribeEvents();
      unsubscribeWork?.();
    };
  }

  get inFlight(): number {
    return this.leases.size;
  }

  isConnected(workerId: string): boolean {
    return this.o.workers.connection(workerId)?.isOpen ?? false;
  }

  connection(workerId: string): WorkerConnection | undefined {
    return this.o.workers.connection(workerId);
  }

  onProgress(listener: (event: ProgressEvent) => void): () => void {
    this.events.on('progress', listener);
    return () => this.events.off('progress', listener);
  }

  /** Takes over a handshaken connection: its messages drive task state; its close re-queues its tasks. */
  attach(worker: LiveWorker, connection: WorkerConnection): void {
    const previous = this.o.workers.connection(worker.workerId);
    if (previous && previous !== connection) {
      previous.onclose = undefined;
      previous.terminate();
      void this.workerLost(worker.workerId, 'replaced by a new connection', { hold: true });
    }
    this.o.workers.adopt(connection);
    this.beating.delete(worker.workerId);
    // Reconciliation starts before the first frame is handled; frames wait for it (kept by the interface).
    this.startReconcile(worker, connection);
    this.o.workers
      .subscribeToMessages(worker.workerId, (message) => {
        const handle = () => this.handle(worker.workerId, message);
        const pending = this.reconciling.get(worker.workerId);
        (pending ? pending.then(handle) : handle()).catch((err: unknown) =>
          this.o.logger.error({ err, workerId: worker.workerId }, 'failed to handle worker message'),
        );
      })
      .catch((err: unknown) => this.o.logger.error({ err, workerId: worker.workerId }, 'cannot listen'));
    connection.onframeerror = (error) => {
      this.o.metrics?.framesRejected.inc({ code: error.code });
      this.o.logger.warn(
        { workerId: worker.workerId, code: error.code },
        `bad frame from worker: ${error.message}`,
      );
    };
    connection.onclose = (info) => {
      if (this.o.workers.connection(worker.workerId) !== connection) return;
      // The worker went to another manager (its welcome closes ours): that one adopts the tasks it reports.
      if (info.code === CLOSE_CODES.replaced) {
        void this.workerLost(worker.workerId, 'another manager took the worker over', { handedOff: true });
        return;
      }
      void this.workerLost(
        worker.workerId,
        `connection closed (${info.code}${info.reason ? ` ${info.reason}` : ''})`,
        // 1006: the socket died without a close frame (the process was killed or crashed under its tasks).
        { felled: info.code === 1006, hold: true },
      );
    };
    this.schedulePump();
  }

  /** Declares a worker gone: closes its connection and re-queues everything it was running. */
  /**
   * `felled`: the worker died or hung under its tasks (a crash, a kill, silence), which counts towards
   * `poison_task`; a loss the tasks cannot have caused (ownership moved, an operator removed the endpoint) does not.
   */
  /**
   * `handedOff`: the worker now belongs to another manager sharing the store, which adopts what it reports;
   * leases the store lets lapse by themselves are let go of instead of failed (reconciler.ts).
   */
  /**
   * `hold`: the worker may come back (its connection dropped, it went silent); its tasks wait for it up to
   * `reconnectHoldMs`, then re-queue (see `holdLeases`).
   */
  async workerLost(
    workerId: string,
    reason: string,
    options: { felled?: boolean; handedOff?: boolean; hold?: boolean } = {},
  ): Promise<void> {
    const connection = this.o.workers.forget(workerId);
    if (connection) {
      connection.onclose = undefined;
      connection.onmessage = undefined;
      connection.terminate();
    }
    const worker = this.o.registry.get(workerId);
    if (worker) {
      worker.baseStatus = 'offline';
      worker.inFlight = 0;
      this.o.registry.touch(worker);
    }
    const ids = [...(this.leasesByWorker.get(workerId) ?? [])];
    this.leasesByWorker.delete(workerId);
    // A peer that never beat on this connection never proved it works: its tasks are not kept waiting
    // for it (it could take tasks, drop them, reconnect, and take them again).
    const wasBeating = this.beating.delete(workerId);
    if (options.hold && wasBeating && (this.o.reconnectHoldMs ?? 0) > 0 && ids.length > 0) {
      this.holdLeases(workerId, ids, reason, options.felled === true);
      this.o.onHold?.(workerId);
      return;
    }
    // A loss that is final (an operator's removal, a redistribution, a hand-off) ends an earlier hold too.
    if (!options.hold) await this.releaseHeld(workerId, reason);
    if (ids.length > 0)
      this.o.logger.warn({ workerId, tasks: ids.length, reason }, 'worker lost; re-queueing its tasks');
    const error: ErrorBody = {
      code: 'worker_lost',
      message: `worker ${workerId} was lost: ${reason}`,
      retryable: true,
      ...(options.felled ? { details: { felled: true } } : {}),
    };
    await Promise.all(
      ids.map(async (taskId) => {
        const lease = this.leases.get(taskId);
        if (!lease || lease.workerId !== workerId) return;
        this.dropLease(lease);
        if (options.handedOff && this.o.queue.release(lease.taskId, lease.leaseToken)) return;
        await this.failQuietly(lease, error, 'worker_lost');
      }),
    );
    await this.endSessions(workerId);
    this.schedulePump();
  }

  /**
   * A lost worker's leases wait for it: a worker that comes back reports them and they are adopted instead
   * of run again (reconciler.ts). Its slots are not counted meanwhile; the leases' deadlines still run.
   */
  private holdLeases(workerId: string, ids: string[], reason: string, felled: boolean): void {
    const leases: Lease[] = [];
    for (const id of ids) {
      const lease = this.leases.get(id);
      if (!lease || lease.workerId !== workerId) continue;
      lease.suspended = true;
      leases.push(lease);
    }
    const previous = this.held.get(workerId);
    previous?.timer.cancel();
    const all = [...(previous?.leases ?? []), ...leases];
    const holdMs = this.o.reconnectHoldMs ?? 0;
    this.o.logger.warn(
      { workerId, tasks: all.length, reason, holdMs },
      'worker lost; holding its tasks for a reconnect before re-queueing them',
    );
    this.held.set(workerId, {
      leases: all,
      reason,
      felled: felled || (previous?.felled ?? false),
      timer: this.o.clock.setTimeout(
        () => void this.releaseHeld(workerId, `did not reconnect within ${holdMs} ms`),
        holdMs,
      ),
    });
  }

  /**
   * Ends a lost worker's hold: the tasks it did not take back are re-queued (`worker_lost`). Called when the
   * hold runs out, when a dial of the worker fails, and after its reconnect was reconciled.
   */
  /**
   * `reconnected`: the worker is back (without these tasks), so its sessions live on; otherwise it is gone
   * and so are its sessions.
   */
  async releaseHeld(workerId: string, why: string, options: { reconnected?: boolean } = {}): Promise<void> {
    const hold = this.held.get(workerId);
    if (!hold) return;
    this.held.delete(workerId);
    hold.timer.cancel();
    const error: ErrorBody = {
      code: 'worker_lost',
      message: `worker ${workerId} was lost: ${hold.reason}; ${why}`,
      retryable: true,
      ...(hold.felled ? { details: { felled: true } } : {}),
    };
    const lost = hold.leases.filter((l) => l.suspended && this.leases.get(l.taskId) === l);
    if (lost.length > 0)
      this.o.logger.warn({ workerId, tasks: lost.length, why }, 'worker lost; re-queueing its tasks');
    await Promise.all(
      lost.map(async (lease) => {
        lease.suspended = false;
        lease.timer.cancel();
        if (this.leases.get(lease.taskId) === lease) this.leases.delete(lease.taskId);
        await this.failQuietly(lease, error, 'worker_lost');
      }),
    );
    if (!options.reconnected) await this.endSessions(workerId);
    this.schedulePump();
  }

  /** Its sessions went with it: their tasks fail session_lost instead of waiting, or starting afresh elsewhere. */
  private async endSessions(workerId: string): Promise<void> {
    await this.o.queue
      .workerGone(workerId)
      .catch((err: unknown) =>
        this.o.logger.error({ err, workerId }, 'failed to end the sessions of a lost worker'),
      );
  }

  /** A held lease its worker reported back: watched on the worker again. */
  private resumeLease(lease: Lease): void {
    if (!lease.suspended) return;
    lease.suspended = false;
    let set = this.leasesByWorker.get(lease.workerId);
    if (!set) this.leasesByWorker.set(lease.workerId, (set = new Set()));
    set.add(lease.taskId);
    const worker = this.o.registry.get(lease.workerId);
    if (worker) {
      worker.inFlight += 1;
      this.o.registry.touch(worker);
    }
  }

  /** Reconciles what the worker's hello reported (reconciler.ts); its other frames wait for the outcome. */
  private startReconcile(worker: LiveWorker, connection: WorkerConnection): void {
    const reported = reportedLeases(connection.hello);
    if (reported.length === 0) {
      void this.releaseHeld(worker.workerId, 'it reconnected without them', { reconnected: true });
      return;
    }
    const host: ReconcileHost = {
      queue: this.o.queue,
      logger: this.o.logger,
      ...(this.o.metrics ? { metrics: this.o.metrics } : {}),
      trackedLease: (taskId) => {
        const lease = this.leases.get(taskId);
        if (lease?.suspended && lease.workerId === worker.workerId) {
          const own = reported.find((r) => r.taskId === taskId);
          if (own?.leaseToken === lease.leaseToken) this.resumeLease(lease);
        }
        return lease;
      },
      restore: (workerId, task) => this.restoreLease(workerId, task),
      cancelOnWorker: (workerId, taskId, leaseToken, reason) => {
        if (this.o.workers.connection(workerId) !== connection) return;
        connection.send({ type: 'task.cancel', taskId, leaseToken, reason }).catch(() => undefined);
      },
    };
    const done = reconcile(host, worker.workerId, worker.maxConcurrency, reported)
      .catch((err: unknown) =>
        this.o.logger.error({ err, workerId: worker.workerId }, 'reconciliation failed'),
      )
      .finally(() => {
        if (this.reconciling.get(worker.workerId) === done) this.reconciling.delete(worker.workerId);
        // Held tasks the worker did not report are gone with its previous life: re-queue them now.
        void this.releaseHeld(worker.workerId, 'it reconnected without them', { reconnected: true });
        this.schedulePump();
      });
    this.reconciling.set(worker.workerId, done);
  }

  /** An adopted task is watched as if dispatched here: lease, slot, and what is left of its deadline. */
  private restoreLease(workerId: string, task: TaskRecord): void {
    const leaseToken = task.leaseToken;
    if (!leaseToken || this.leases.has(task.id)) return;
    const now = this.o.clock.now();
    const startedAt = task.attempts.at(-1)?.startedAt ?? now;
    const remaining = Math.max(0, startedAt + task.timeoutMs - now);
    const lease: Lease = {
      taskId: task.id,
      leaseToken,
      attempt: task.attempt,
      workerId,
      capability: task.capability,
      dispatchedAt: startedAt,
      timer: this.o.clock.setTimeout(
        () => void this.expire(task.id, leaseToken),
        remaining + (this.o.graceMs ?? 2000),
      ),
      cancelling: false,
    };
    this.leases.set(task.id, lease);
    let set = this.leasesByWorker.get(workerId);
    if (!set) this.leasesByWorker.set(workerId, (set = new Set()));
    set.add(task.id);
    const worker = this.o.registry.get(workerId);
    if (worker) {
      worker.inFlight += 1;
      this.o.registry.touch(worker);
    }
  }

  /** Sends `drain`: the worker finishes what it runs and takes nothing new. */
  async drain(workerId: string, reason = 'drained by operator'): Promise<void> {
    const worker = this.o.registry.require(workerId);
    worker.draining = true;
    this.o.registry.touch(worker);
    if (this.isConnected(workerId)) await this.o.workers.sendMessage(workerId, { type: 'drain', reason });
  }

  /** Sends `resume`: a drained worker takes tasks again. */
  async resume(workerId: string): Promise<void> {
    const worker = this.o.registry.require(workerId);
    if (this.isConnected(workerId)) await this.o.workers.sendMessage(workerId, { type: 'resume' });
    worker.draining = false;
    this.o.registry.touch(worker);
    this.schedulePump();
  }

  /** Cancels a task wherever it is: in the queue at once, on its worker by `task.cancel`. */
  async cancel(taskId: string, reason = 'cancelled by caller'): Promise<TaskRecord> {
    const task = await this.o.queue.cancel(taskId, reason);
    const lease = this.leases.get(taskId);
    if (lease && !lease.cancelling) this.cancelOnWorker(lease, reason);
    return task;
  }

  /** Hands out no new task from now on; running tasks still report and finish. */
  pause(): void {
    this.paused = true;
  }

  schedulePump(): void {
    if (this.stopped || this.paused) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    queueMicrotask(() => {
      this.pump().catch((err: unknown) => this.o.logger.error({ err }, 'dispatch pump failed'));
    });
  }

  /** Fills every free slot it can. Re-entrant calls fold into one more round. */
  async pump(): Promise<void> {
    if (this.paused) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    // Nothing waits (a store that knows at once): no claim could find a task, no backoff needs a wake-up.
    if (this.o.queue.hasQueued?.() === false) {
      this.readyHint = 0;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        const hint = this.readyHint;
        this.readyHint = 0;
        for (const group of this.groups()) await this.fillGroup(group, hint);
      } while (this.pumpAgain && !this.stopped);
    } finally {
      this.pumping = false;
    }
    await this.scheduleWake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribeQueue();
    this.wake?.timer.cancel();
    for (const lease of this.leases.values()) lease.timer.cancel();
    for (const hold of this.held.values()) hold.timer.cancel();
  }

  /** Workers that can take a task, grouped by identical capability sets (one claim query per group). */
  private groups(): LiveWorker[][] {
    const groups = new Map<string, LiveWorker[]>();
    for (const w of this.o.registry.list()) {
      if (!this.hasRoom(w)) continue;
      const key = this.groupKey(w.capabilities);
      const g = groups.get(key);
      if (g) g.push(w);
      else groups.set(key, [w]);
    }
    return [...groups.values()];
  }

  /** A worker's capability list is set when it registers: its group key is made once, not every pump. */
  private groupKey(capabilities: string[]): string {
    let key = this.groupKeys.get(capabilities);
    if (key === undefined) this.groupKeys.set(capabilities, (key = capabilities.join('\u0000')));
    return key;
  }

  private hasRoom(w: LiveWorker): boolean {
    return (
      w.baseStatus === 'online' &&
      !w.draining &&
      w.inFlight + (this.claiming.get(w.workerId) ?? 0) < w.maxConcurrency &&
      this.isConnected(w.workerId)
    );
  }

  /** Counts (or with -1 uncounts) a slot held by a claim in the air. */
  private holdForClaim(workerId: string, delta: 1 | -1): void {
    const n = (this.claiming.get(workerId) ?? 0) + delta;
    if (n > 0) this.claiming.set(workerId, n);
    else this.claiming.delete(workerId);
  }

  /**
   * Fills the group's free slots, several claims at a time: with a shared store every claim is a few network
   * round trips, and claiming one slot after another would cap throughput at the store's latency. Each
   * claim holds its slot while it is in the air (`claiming`, which the strategy sees and the worker's own
   * in-flight count does not), so the strategy never hands one free slot to two claims.
   */
  private async fillGroup(group: LiveWorker[], readyHint: number): Promise<void> {
    const capability = group[0]?.capabilities[0] ?? '';
    // Workers whose claim came back empty: another may still find work (tasks pinned to it by a session).
    let dry: Set<string> | undefined;
    // As many claims at first as tasks were made ready since the last pump (at least one), more only while
    // every claim finds a task (a backlog). Most pumps find one task or none (a submission, a freed slot):
    // sixteen claims each, fifteen of them empty, were the largest part of the dispatcher's cost per task.
    let width = Math.min(MAX_PARALLEL_CLAIMS, Math.max(1, readyHint));
    let expected = readyHint;
    // No task expected (a freed slot, a backlog left from before): the first claim already probes.
    let probing = readyHint <= 0;
    for (;;) {
      if (this.o.queue.hasQueued?.() === false) return;
      const reserved: LiveWorker[] = [];
      // One candidate list per round; a reserved slot raises its candidate's count, as in distributeTasks.
      const candidates: Candidate[] = [];
      for (const w of group)
        if (!dry?.has(w.workerId) && this.hasRoom(w))
          candidates.push(toCandidate(w, this.claiming.get(w.workerId) ?? 0));
      while (reserved.length < width && candidates.length > 0 && !this.stopped && !this.paused) {
        const chosen = selectOptimalWorker(this.o.strategy, candidates, { capability });
        const worker = chosen && this.o.registry.get(chosen.workerId);
        if (!chosen || !worker) break;
        this.holdForClaim(worker.workerId, 1);
        chosen.inFlight += 1;
        reserved.push(worker);
      }
      if (reserved.length === 0) return;
      let count: number;
      if (reserved.length === 1) {
        const worker = reserved[0]!;
        count = (await this.claimOne(worker)) ? 1 : 0;
        if (count === 0) (dry ??= new Set()).add(worker.workerId);
      } else {
        const r = await this.claimAll(reserved);
        count = r.count;
        for (const id of r.dry) (dry ??= new Set()).add(id);
      }
      // Every claim found a task: claim what is still expected, then probe with one claim, and double from
      // there while a backlog keeps answering.
      expected -= count;
      if (count < reserved.length) continue;
      if (expected > 0) width = Math.min(MAX_PARALLEL_CLAIMS, expected);
      else if (!probing) [probing, width] = [true, 1];
      else width = Math.min(MAX_PARALLEL_CLAIMS, width * 2);
    }
  }

  /**
   * One claim (the usual round: a submission or a freed slot) without the bookkeeping of several: true when
   * it found a task (dispatched).
   */
  private async claimOne(worker: LiveWorker): Promise<boolean> {
    let task: TaskRecord | undefined;
    try {
      task = await this.o.queue.claim(worker.capabilities, worker.workerId, {
        sessionKeepMs: sessionKeepOf(worker),
      });
    } finally {
      this.holdForClaim(worker.workerId, -1); // dispatch counts the slot
    }
    if (!task) return false;
    await this.dispatch(worker, task);
    return true;
  }

  /** Several claims at once: how many found a task (each dispatched), and the workers whose claim was empty. */
  private async claimAll(reserved: LiveWorker[]): Promise<{ count: number; dry: string[] }> {
    const claims = await Promise.allSettled(
      reserved.map((worker) =>
        this.o.queue.claim(worker.capabilities, worker.workerId, { sessionKeepMs: sessionKeepOf(worker) }),
      ),
    );
    for (const worker of reserved) this.holdForClaim(worker.workerId, -1); // dispatch counts the slot
    const failed = claims.find((c) => c.status === 'rejected');
    const won = claims.flatMap((c, i) =>
      c.status === 'fulfilled' && c.value ? [{ worker: reserved[i]!, task: c.value }] : [],
    );
    await Promise.all(won.map(({ worker, task }) => this.dispatch(worker, task)));
    if (failed) throw failed.reason;
    const dry: string[] = [];
    claims.forEach((c, i) => {
      if (c.status === 'fulfilled' && !c.value) dry.push(reserved[i]!.workerId);
    });
    return { count: won.length, dry };
  }

  private async dispatch(worker: LiveWorker, task: TaskRecord): Promise<void> {
    const leaseToken = task.leaseToken;
    if (!leaseToken) throw new FleetError('internal', `claimed task ${task.id} has no lease token`);
    const now = this.o.clock.now();
    const lease: Lease = {
      taskId: task.id,
      leaseToken,
      attempt: task.attempt,
      workerId: worker.workerId,
      capability: task.capability,
      dispatchedAt: now,
      timer: this.o.clock.setTimeout(
        () => void this.expire(task.id, leaseToken),
        task.timeoutMs + (this.o.graceMs ?? 2000),
      ),
      cancelling: false,
    };
    this.leases.set(task.id, lease);
    let set = this.leasesByWorker.get(worker.workerId);
    if (!set) this.leasesByWorker.set(worker.workerId, (set = new Set()));
    set.add(task.id);
    worker.inFlight += 1;
    try {
      // The frame is written first (at once when it is the first of its turn: batch-writes.ts), the
      // bookkeeping after it, so a lone task's frame does not wait for the metrics.
      const sent = this.o.workers.sendMessage(worker.workerId, {
        type: 'task.assign',
        taskId: task.id,
        attempt: task.attempt,
        leaseToken,
        capability: task.capability,
        payload: task.payload,
        deadline: now + task.timeoutMs,
        timeoutMs: task.timeoutMs,
        ...(task.sessionId ? { sessionId: task.sessionId } : {}),
      });
      this.o.metrics?.observeWait(task, now);
      this.countReexecution(task);
      await sent;
      this.o.metrics?.observeDispatchLatency(now, this.o.clock.now());
      await this.o.queue.markRunning(task.id, leaseToken).catch(() => undefined);
    } catch (err) {
      this.dropLease(lease);
      // The claim may have bound the session after the worker's loss ended its sessions: end them again, so
      // the retry fails session_lost rather than waiting for a worker that will not have the session.
      if (task.sessionId !== undefined && !this.isConnected(worker.workerId))
        await this.o.queue.workerGone(worker.workerId).catch(() => 0);
      await this.failQuietly(lease, toFleetError(err, 'worker_lost').toJSON(), 'worker_lost');
    }
  }

  private async handle(workerId: string, message: WorkerToManager): Promise<void> {
    const worker = this.o.registry.get(workerId);
    if (worker) worker.lastHeartbeat = this.o.clock.now();
    switch (message.type) {
      case 'heartbeat':
        if (!worker) return;
        if (this.o.workers.connection(workerId)?.isOpen) this.beating.add(workerId);
        worker.cpu = message.cpu;
        worker.memory = message.memory;
        if (message.disk !== undefined) worker.disk = message.disk;
        if (message.info && this.withinOutputLimits(workerId, message.info)) worker.info = message.info;
        if (message.draining !== undefined && message.draining !== worker.draining)
          worker.draining = message.draining;
        this.o.registry.touch(worker);
        return;
      case 'task.progress': {
        const lease = this.currentLease(workerId, message);
        if (!lease) return;
        if (message.partial !== undefined && !this.withinOutputLimits(workerId, message.partial)) {
          delete message.partial;
        }
        if (message.percent !== undefined || message.message !== undefined) {
          await this.o.queue
            .markRunning(message.taskId, message.leaseToken, {
              ...(message.percent !== undefined ? { percent: message.percent } : {}),
              ...(message.message !== undefined ? { message: message.message } : {}),
            })
            .catch(() => undefined);
        }
        this.events.emit('progress', {
          taskId: message.taskId,
          attempt: message.attempt,
          workerId,
          ...(message.percent !== undefined ? { percent: message.percent } : {}),
          ...(message.message !== undefined ? { message: message.message } : {}),
          ...(message.log ? { log: message.log } : {}),
          ...(message.partial !== undefined ? { partial: message.partial } : {}),
        } satisfies ProgressEvent);
        return;
      }
      case 'task.result': {
        const lease = this.currentLease(workerId, message);
        if (!lease) return;
        this.dropLease(lease);
        if (!this.withinOutputLimits(workerId, message.output)) {
          await this.failQuietly(
            lease,
            {
              code: 'invalid_message',
              message: `the output of task ${message.taskId} breaks the manager's limits on JSON shape`,
              retryable: false,
            },
            'failed',
          );
          this.schedulePump();
          return;
        }
        const metas: ArtifactMeta[] = [];
        if (message.artifacts?.length) {
          const stored = message.artifacts.map((a) => {
            const data = Buffer.from(a.data, 'base64');
            metas.push({ name: a.name, contentType: a.contentType, size: data.length });
            return { name: a.name, contentType: a.contentType, size: data.length, data };
          });
          await this.o.artifacts.put(message.taskId, stored);
        }
        try {
          const task = await this.o.queue.complete(message.taskId, message.leaseToken, message.output, metas);
          this.o.registry.recordOutcome(workerId, true, message.durationMs);
          this.o.metrics?.observeFinished(task, this.o.clock.now());
        } catch (err) {
          this.onStale(workerId, message.taskId, err);
        }
        this.schedulePump();
        return;
      }
      case 'task.error': {
        const lease = this.currentLease(workerId, message);
        if (!lease) return;
        this.dropLease(lease);
        this.o.registry.recordOutcome(workerId, false, message.durationMs);
        if (message.error.details && !this.withinOutputLimits(workerId, message.error.details)) {
          delete message.error.details;
        }
        if (lease.cancelling) {
          this.schedulePump();
          return;
        }
        const outcome = message.error.code === 'timeout' ? 'timed_out' : 'failed';
        await this.failQuietly(lease, message.error, outcome, this.timeoutRetry(lease, outcome));
        this.schedulePump();
        return;
      }
      case 'error':
        this.o.logger.warn(
          { workerId, error: message.error, inReplyTo: message.inReplyTo },
          'worker reported an error',
        );
        return;
      case 'hello':
        this.o.logger.warn({ workerId }, 'unexpected hello after the handshake; ignored');
        return;
    }
  }

  /** A worker's JSON that stores and streams could not serialize back is refused (logged) instead of stored. */
  withinOutputLimits(workerId: string, value: unknown): boolean {
    if (!this.o.outputLimits) return true;
    try {
      checkJsonLimits(value, this.o.outputLimits, 'worker output', 'invalid_message');
      return true;
    } catch (err) {
      this.o.logger.warn({ workerId, err: (err as Error).message }, 'refused a worker output');
      return false;
    }
  }

  /** The lease this manager holds for the message's task, if the message is from it; otherwise counts a stale result. */
  private currentLease(
    workerId: string,
    m: { taskId: string; leaseToken: string; type: string },
  ): Lease | undefined {
    const lease = this.leases.get(m.taskId);
    if (lease && lease.leaseToken === m.leaseToken && lease.workerId === workerId && !lease.suspended)
      return lease;
    if (m.type !== 'task.progress') {
      this.o.metrics?.staleResults.inc();
      this.o.logger.info(
        { workerId, taskId: m.taskId },
        `dropped ${m.type} from a lease that is not current`,
      );
    }
    return undefined;
  }

  private onStale(workerId: string, taskId: string, err: unknown): void {
    const e = toFleetError(err);
    if (e.code === 'stale_lease' || e.code === 'conflict' || e.code === 'not_found') {
      this.o.metrics?.staleResults.inc();
      this.o.logger.info({ workerId, taskId, code: e.code }, 'result not recorded: lease no longer current');
      return;
    }
    this.o.logger.error({ err: e, workerId, taskId }, 'failed to record a result');
  }

  private dropLease(lease: Lease): void {
    lease.timer.cancel();
    if (this.leases.get(lease.taskId) === lease) this.leases.delete(lease.taskId);
    this.leasesByWorker.get(lease.workerId)?.delete(lease.taskId);
    const worker = this.o.registry.get(lease.workerId);
    // A held lease's slot was not counted (its worker is lost).
    if (!lease.suspended && worker && worker.inFlight > 0) {
      worker.inFlight -= 1;
      this.o.registry.touch(worker);
    }
  }

  /** A timed-out task is retried only when its capability is declared idempotent. */
  private timeoutRetry(lease: Lease, outcome: string): false | undefined {
    if (outcome !== 'timed_out' || !this.o.isIdempotent) return undefined;
    return this.o.isIdempotent(lease.capability) ? undefined : false;
  }

  private async failQuietly(
    lease: Lease,
    error: ErrorBody,
    outcome: 'failed' | 'timed_out' | 'worker_lost',
    retryable?: false,
  ): Promise<void> {
    try {
      const task = await this.o.queue.fail(lease.taskId, lease.leaseToken, error, {
        outcome,
        ...(retryable === false ? { retryable } : {}),
      });
      if (task.state !== 'queued') this.o.metrics?.observeFinished(task, this.o.clock.now());
    } catch (err) {
      this.onStale(lease.workerId, lease.taskId, err);
    }
  }

  private cancelOnWorker(lease: Lease, reason: string): void {
    lease.cancelling = true;
    lease.timer.cancel();
    // The worker answers a cancel at once; if it never does, free the slot after the grace period anyway.
    lease.timer = this.o.clock.setTimeout(() => {
      this.dropLease(lease);
      this.schedulePump();
    }, this.o.graceMs ?? 2000);
    this.o.workers
      .sendMessage(lease.workerId, {
        type: 'task.cancel',
        taskId: lease.taskId,
        leaseToken: lease.leaseToken,
        reason,
      })
      .catch(() => undefined);
  }

  /**
   * A task runs again after an attempt that may have run (its worker was lost, or it timed out): the
   * at-least-once cases of docs/architecture.md, counted so an operator sees how often they happen.
   */
  private countReexecution(task: TaskRecord): void {
    const previous = task.attempts.length >= 2 ? task.attempts[task.attempts.length - 2] : undefined;
    if (previous?.outcome === 'worker_lost' || previous?.outcome === 'timed_out') {
      this.o.metrics?.reexecutions.inc({ capability: task.capability, reason: previous.outcome });
    }
  }

  /** The manager's own deadline: the worker never answered within timeout + grace. */
  private async expire(taskId: string, leaseToken: string): Promise<void> {
    // Timers fire before sockets are read: after a pause the answer may be waiting unread. Judge after one
    // poll phase, on whatever it delivered.
    await new Promise((r) => setImmediate(r));
    const lease = this.leases.get(taskId);
    if (!lease || lease.leaseToken !== leaseToken) return;
    this.cancelOnWorker(lease, 'deadline passed');
    this.dropLease(lease);
    await this.failQuietly(
      lease,
      {
        code: 'timeout',
        message: `task ${taskId} got no answer from worker ${lease.workerId} before its deadline`,
        retryable: true,
        // The worker hung under the task (no answer at all), which counts towards poison_task.
        details: { hung: true },
      },
      'timed_out',
      this.timeoutRetry(lease, 'timed_out'),
    );
    this.schedulePump();
  }

  /** Sleeps until the next backed-off task becomes ready. */
  private async scheduleWake(): Promise<void> {
    if (this.stopped) return;
    const at = await this.o.queue.nextReadyAt();
    if (at === undefined) return;
    if (this.wake && this.wake.at <= at) return;
    this.wake?.timer.cancel();
    const delay = Math.max(0, at - this.o.clock.now());
    this.wake = {
      at,
      timer: this.o.clock.setTimeout(() => {
        this.wake = undefined;
        this.schedulePump();
      }, delay + 1),
    };
  }
}

/**
 * How long the worker remembers a session after its last task, from the idle TTL it reports
 * (`info.sessions.ttlMs`): the TTL, then its tombstone of the ended session (the larger of 4 TTLs and an hour).
 */
function sessionKeepOf(w: LiveWorker): number | undefined {
  const sessions = w.info['sessions'];
  const ttl = sessions && typeof sessions === 'object' ? (sessions as { ttlMs?: unknown }).ttlMs : undefined;
  return typeof ttl === 'number' && ttl > 0 ? ttl + Math.max(4 * ttl, 3_600_000) : undefined;
}

function toCandidate(w: LiveWorker, claiming: number): Candidate {
  return {
    workerId: w.workerId,
    workerType: w.workerType,
    status: statusOf(w),
    capabilities: w.capabilities,
    inFlight: w.inFlight + claiming,
    maxConcurrency: w.maxConcurrency,
    ...(w.ewmaLatencyMs !== undefined ? { ewmaLatencyMs: w.ewmaLatencyMs } : {}),
  };
}
