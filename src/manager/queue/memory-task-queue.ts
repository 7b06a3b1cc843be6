/**
 * The embedded store: the whole queue in one process's memory (docs/architecture.md: Stores; the `memory` store).
 *
 * Cost per operation does not depend on how many tasks wait: queued tasks sit in one indexed heap per
 * capability (priority first, then queue order), tasks in retry backoff in one heap ordered by `notBefore`
 * and are moved to their capability's heap when due. A claim looks only at the heads of the heaps for the
 * worker's capabilities, and at the head of the worker's own heap of pinned tasks (tasks of sessions bound to
 * it, which only it may take, so they never hold up their capability's heap). Finished tasks move to an LRU of `retainFinished` entries, so memory stays bounded
 * however many tasks pass through; an evicted task's idempotency key is forgotten with it.
 *
 * Every method is synchronous inside; the async signatures are the interface's, shared with Redis.
 */
import { randomUUID } from 'node:crypto';
import { FleetError } from '../../protocol/errors.js';
import type { ErrorBody } from '../../protocol/messages.js';
import { IndexedHeap, type HeapItem } from './indexed-heap.js';
import { Lru } from './lru.js';
import { MemorySessionTable } from './memory-session-table.js';
import { copyTask, createTaskRecord } from './task-record.js';
import {
  assertRetryable,
  assignTask,
  cancelTask,
  completeTask,
  failLostSession,
  failTask,
  markTaskRunning,
  resetForRetry,
} from './task-transitions.js';
import type { ArtifactMeta, TaskRecord, TaskState, TaskSubmission } from './task.js';
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

interface Entry extends HeapItem {
  task: TaskRecord;
  /** Creation order, for list(). */
  readonly created: number;
  /** Taken each time the task enters the queue, so equal priorities leave in that order. */
  queued: number;
}

/**
 * Higher priority first; within a priority, a retried task (attempt > 0) before one that has never run —
 * its earlier attempt was lost or failed, and making it wait behind the whole backlog again would stretch
 * a worker's death into minutes under load — then the order tasks entered the queue.
 */
const readyBefore = (a: Entry, b: Entry): boolean => {
  if (a.task.priority !== b.task.priority) return a.task.priority > b.task.priority;
  const aRetried = a.task.attempt > 0;
  if (aRetried !== b.task.attempt > 0) return aRetried;
  return a.queued < b.queued;
};
const dueBefore = (a: Entry, b: Entry): boolean =>
  a.task.notBefore !== b.task.notBefore ? a.task.notBefore < b.task.notBefore : a.queued < b.queued;

export class MemoryTaskQueue implements TaskQueue {
  private readonly now: () => number;
  private readonly random: () => number;
  /** Tasks not yet final. */
  private readonly live = new Map<string, Entry>();
  /** Final tasks, bounded by retainFinished. */
  private readonly finished = new Lru<Entry>();
  private readonly byIdempotencyKey = new Map<string, string>();
  private readonly ready = new Map<string, IndexedHeap<Entry>>();
  private readonly delayed = new IndexedHeap<Entry>(dueBefore);
  /** Per worker, ready tasks of the sessions bound to it. */
  private readonly pinned = new Map<string, IndexedHeap<Entry>>();
  private readonly sessions: MemorySessionTable;
  private readonly queuedPerCapability = new Map<string, number>();
  private queuedTotal = 0;
  private sequence = 0;
  private readonly listeners = new Set<(event: TaskEvent) => void>();
  private closed = false;

  constructor(private readonly options: TaskQueueOptions) {
    validateTaskQueueOptions(options);
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.sessions = new MemorySessionTable(this.now);
  }

  async submit(submission: TaskSubmission): Promise<SubmitResult> {
    this.assertOpen();
    const now = this.now();
    const record = createTaskRecord(submission, this.options, now);
    const existingId =
      record.idempotencyKey !== undefined ? this.byIdempotencyKey.get(record.idempotencyKey) : undefined;
    const existing = this.lookup(existingId ?? record.id);
    if (existing) return { task: copyTask(existing.task), created: false };
    this.assertRoom();

    const entry: Entry = { task: record, created: ++this.sequence, queued: 0, heapIndex: -1 };
    this.live.set(record.id, entry);
    if (record.idempotencyKey !== undefined) this.byIdempotencyKey.set(record.idempotencyKey, record.id);
    const task = this.enqueue(entry, now) ? this.emit('submitted', entry) : copyTask(record);
    return { task, created: true };
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    this.assertOpen();
    const entry = this.lookup(id);
    return entry && copyTask(entry.task);
  }

  async list(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    this.assertOpen();
    const states = filter.state === undefined ? undefined : new Set(([] as TaskState[]).concat(filter.state));
    const matches: Entry[] = [];
    for (const source of [this.live.values(), this.finished.values()]) {
      for (const entry of source) {
        const t = entry.task;
        if (states && !states.has(t.state)) continue;
        if (filter.capability !== undefined && t.capability !== filter.capability) continue;
        if (filter.workerId !== undefined && t.workerId !== filter.workerId) continue;
        matches.push(entry);
      }
    }
    matches.sort((a, b) => a.created - b.created);
    const limited = filter.limit !== undefined ? matches.slice(0, Math.max(0, filter.limit)) : matches;
    return limited.map((e) => copyTask(e.task));
  }

  async claim(
    capabilities: readonly string[],
    workerId: string,
    options: ClaimOptions = {},
  ): Promise<TaskRecord | undefined> {
    this.assertOpen();
    const now = this.now();
    this.promoteDue(now);
    for (;;) {
      let bestHeap: IndexedHeap<Entry> | undefined;
      let best: Entry | undefined;
      const own = this.pinned.get(workerId);
      const ownHead = own?.peek();
      if (ownHead && capabilities.includes(ownHead.task.capability)) {
        best = ownHead;
        bestHeap = own;
      }
      for (const capability of capabilities) {
        const heap = this.ready.get(capability);
        const head = heap?.peek();
        if (head && (!best || readyBefore(head, best))) {
          best = head;
          bestHeap = heap;
        }
      }
      if (!best || !bestHeap) return undefined;
      bestHeap.pop();
      if (bestHeap === own && own.size === 0) this.pinned.delete(workerId);
      const t = best.task;
      if (t.sessionId !== undefined) {
        const ttl = sessionBindingTtlMs(t.timeoutMs, options);
        const bound = this.sessions.bind(t.sessionId, workerId, ttl, t.session === 'create-if-missing');
        if (bound.kind === 'other') {
          // Its session went to another worker since it was queued (two first tasks of one session): it
          // waits for that worker, and this claim looks further.
          t.sessionWorker = bound.workerId;
          t.updatedAt = now;
          this.pinnedHeap(bound.workerId).push(best);
          this.emit('routed', best);
          continue;
        }
        if (bound.kind === 'lost') {
          this.countQueued(t.capability, -1);
          this.endLost(best, bound.workerId, now);
          continue;
        }
      }
      this.countQueued(t.capability, -1);
      assignTask(t, workerId, randomUUID(), now);
      return this.emit('claimed', best);
    }
  }

  async workerGone(workerId: string): Promise<number> {
    this.assertOpen();
    this.sessions.loseWorker(workerId);
    const heap = this.pinned.get(workerId);
    if (!heap) return 0;
    this.pinned.delete(workerId);
    const now = this.now();
    let count = 0;
    for (let entry = heap.pop(); entry; entry = heap.pop()) {
      count++;
      if (entry.task.session === 'create-if-missing') {
        delete entry.task.sessionWorker;
        entry.task.updatedAt = now;
        this.readyHeap(entry.task.capability).push(entry);
        this.emit('routed', entry);
      } else {
        this.countQueued(entry.task.capability, -1);
        this.endLost(entry, workerId, now);
      }
    }
    return count;
  }

  async sessionBinding(sessionId: string): Promise<SessionBinding | undefined> {
    this.assertOpen();
    return this.sessions.get(sessionId);
  }

  async markRunning(id: string, leaseToken: string, progress?: TaskRecord['progress']): Promise<TaskRecord> {
    this.assertOpen();
    const entry = this.leased(id, leaseToken);
    const event = markTaskRunning(entry.task, progress, this.now());
    return event ? this.emit(event, entry) : copyTask(entry.task);
  }

  async complete(
    id: string,
    leaseToken: string,
    output: unknown,
    artifacts?: ArtifactMeta[],
  ): Promise<TaskRecord> {
    this.assertOpen();
    const entry = this.leased(id, leaseToken);
    completeTask(entry.task, output, artifacts, this.now());
    this.finish(entry);
    return this.emit('finished', entry);
  }

  async fail(id: string, leaseToken: string, error: ErrorBody, options: FailOptions): Promise<TaskRecord> {
    this.assertOpen();
    const entry = this.leased(id, leaseToken);
    const now = this.now();
    const decision = failTask(entry.task, error, options, { ...this.options, random: this.random }, now);
    if (decision.kind === 'retry') {
      if (this.enqueue(entry, now)) return this.emit('retrying', entry);
      return copyTask(entry.task);
    }
    this.finish(entry);
    return this.emit('finished', entry);
  }

  async adopt(id: string, leaseToken: string, workerId: string): Promise<TaskRecord> {
    this.assertOpen();
    const entry = this.leased(id, leaseToken);
    assertLeaseHolder(entry.task, workerId);
    return copyTask(entry.task);
  }

  /** Nothing else could ever end a lease of this store: the caller must fail it. */
  release(): boolean {
    return false;
  }

  async cancel(id: string, reason?: string): Promise<TaskRecord> {
    this.assertOpen();
    const entry = this.live.get(id);
    if (!entry) {
      const done = this.lookup(id);
      if (done)
        throw new FleetError('conflict', `task ${id} is already ${done.task.state}; nothing to cancel`);
      throw new FleetError('not_found', `no task with id ${id}`);
    }
    if (entry.task.state === 'queued') this.dequeue(entry);
    cancelTask(entry.task, reason, this.now());
    this.finish(entry);
    return this.emit('finished', entry);
  }

  async retry(id: string): Promise<TaskRecord> {
    this.assertOpen();
    const entry = this.lookup(id);
    if (!entry) throw new FleetError('not_found', `no task with id ${id}`);
    assertRetryable(entry.task);
    this.assertRoom();
    const now = this.now();
    this.finished.delete(id);
    this.live.set(id, entry);
    resetForRetry(entry.task, now);
    return this.enqueue(entry, now) ? this.emit('retrying', entry) : copyTask(entry.task);
  }

  async depth(capability?: string): Promise<number> {
    this.assertOpen();
    return capability === undefined ? this.queuedTotal : (this.queuedPerCapability.get(capability) ?? 0);
  }

  hasQueued(): boolean {
    return this.queuedTotal > 0;
  }

  async nextReadyAt(): Promise<number | undefined> {
    this.assertOpen();
    this.promoteDue(this.now());
    return this.delayed.peek()?.task.notBefore;
  }

  subscribe(listener: (event: TaskEvent) => void): () => void {
    this.assertOpen();
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new FleetError('conflict', 'the task queue is closed');
  }

  private assertRoom(): void {
    if (this.queuedTotal >= this.options.maxQueued) {
      throw new FleetError(
        'queue_full',
        `queue is full: ${this.queuedTotal} tasks waiting, the bound is ${this.options.maxQueued} (manager.queue.max_size); submit again later`,
        { details: { queued: this.queuedTotal, maxQueued: this.options.maxQueued } },
      );
    }
  }

  /** Live or retained task; a lookup counts as a use for the LRU. */
  private lookup(id: string): Entry | undefined {
    const live = this.live.get(id);
    if (live) return live;
    return this.finished.get(id);
  }

  /** The entry if `leaseToken` is its current lease; anything else is `stale_lease` and changes nothing. */
  private leased(id: string, leaseToken: string): Entry {
    const entry = this.live.get(id);
    if (!entry) {
      const done = this.finished.peek(id);
      if (!done) throw new FleetError('not_found', `no task with id ${id}`);
      throw new FleetError(
        'stale_lease',
        `task ${id} is already ${done.task.state}; the lease is no longer current`,
        {
          details: { taskId: id, state: done.task.state },
        },
      );
    }
    const t = entry.task;
    if ((t.state !== 'assigned' && t.state !== 'running') || t.leaseToken !== leaseToken) {
      throw new FleetError(
        'stale_lease',
        `task ${id}: the lease is not current (task is ${t.state}, attempt ${t.attempt})`,
        {
          details: { taskId: id, state: t.state, attempt: t.attempt },
        },
      );
    }
    return entry;
  }

  /** Queues a task; false when it ended instead (its session is lost). */
  private enqueue(entry: Entry, now: number): boolean {
    entry.queued = ++this.sequence;
    const t = entry.task;
    const binding = t.sessionId !== undefined ? this.sessions.get(t.sessionId) : undefined;
    if (binding?.lost && t.session !== 'create-if-missing') {
      this.endLost(entry, binding.workerId, now);
      return false;
    }
    if (entry.task.notBefore > now) {
      // Routed when due: its session's worker may be gone by then.
      if (entry.task.sessionWorker !== undefined) delete entry.task.sessionWorker;
      this.delayed.push(entry);
    } else if (!this.place(entry, now)) return false;
    this.countQueued(entry.task.capability, 1);
    return true;
  }

  /**
   * Puts a ready task where it may be claimed: its session's worker's heap when the session is bound, its
   * capability's heap otherwise. A task of a lost session (not `create-if-missing`) ends instead: false.
   */
  private place(entry: Entry, now: number): boolean {
    const t = entry.task;
    const binding = t.sessionId !== undefined ? this.sessions.get(t.sessionId) : undefined;
    if (binding?.lost && t.session !== 'create-if-missing') {
      this.endLost(entry, binding.workerId, now);
      return false;
    }
    if (binding && !binding.lost) {
      t.sessionWorker = binding.workerId;
      this.pinnedHeap(binding.workerId).push(entry);
    } else {
      if (t.sessionWorker !== undefined) delete t.sessionWorker;
      this.readyHeap(t.capability).push(entry);
    }
    return true;
  }

  /** Ends a task (no longer counted as queued) whose session was lost with its worker. */
  private endLost(entry: Entry, workerId: string, now: number): void {
    failLostSession(entry.task, sessionLostError(entry.task.sessionId ?? '', workerId), now);
    this.finish(entry);
    this.emit('finished', entry);
  }

  private dequeue(entry: Entry): void {
    const worker = entry.task.sessionWorker;
    const pinned = worker !== undefined ? this.pinned.get(worker) : undefined;
    const removed =
      this.readyHeap(entry.task.capability).remove(entry) ||
      this.delayed.remove(entry) ||
      (pinned?.remove(entry) ?? false);
    if (removed) this.countQueued(entry.task.capability, -1);
    if (worker !== undefined && pinned?.size === 0) this.pinned.delete(worker);
  }

  private promoteDue(now: number): void {
    for (let head = this.delayed.peek(); head && head.task.notBefore <= now; head = this.delayed.peek()) {
      this.delayed.pop();
      if (!this.place(head, now)) this.countQueued(head.task.capability, -1);
    }
  }

  private pinnedHeap(workerId: string): IndexedHeap<Entry> {
    let heap = this.pinned.get(workerId);
    if (!heap) {
      heap = new IndexedHeap<Entry>(readyBefore);
      this.pinned.set(workerId, heap);
    }
    return heap;
  }

  private readyHeap(capability: string): IndexedHeap<Entry> {
    let heap = this.ready.get(capability);
    if (!heap) {
      heap = new IndexedHeap<Entry>(readyBefore);
      this.ready.set(capability, heap);
    }
    return heap;
  }

  private countQueued(capability: string, delta: number): void {
    this.queuedTotal += delta;
    const n = (this.queuedPerCapability.get(capability) ?? 0) + delta;
    if (n === 0) this.queuedPerCapability.delete(capability);
    else this.queuedPerCapability.set(capability, n);
  }

  private finish(entry: Entry): void {
    const id = entry.task.id;
    this.live.delete(id);
    this.finished.set(id, entry);
    while (this.finished.size > this.options.retainFinished) {
      const oldest = this.finished.shift();
      if (!oldest) break;
      const key = oldest.task.idempotencyKey;
      if (key !== undefined && this.byIdempotencyKey.get(key) === oldest.task.id)
        this.byIdempotencyKey.delete(key);
    }
  }

  /**
   * Announces the entry's new state and returns the snapshot the listeners got, which the calling method
   * returns too: one copy per change, not one for the listeners and one for the caller (neither may change
   * it; see task-queue.ts).
   */
  private emit(kind: TaskEvent['kind'], entry: Entry): TaskRecord {
    const task = copyTask(entry.task);
    if (this.listeners.size === 0) return task;
    const event: TaskEvent = { kind, task };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not undo or block a state change that has already happened.
      }
    }
    return task;
  }
}
