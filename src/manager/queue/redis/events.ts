/**
 * Task events of the Redis store. The process that changes a task tells its own subscribers at once, with
 * the record it wrote. Other managers learn of it from BullMQ's own event streams (`<queue>:events`, what
 * `QueueEvents` reads), one blocking XREAD over every queue's stream on the `subscriber` connection: no
 * second bus. A stream entry names the job and what happened; the record is read from the job (a final one
 * comes in the entry itself). Entries this process caused are recognised and skipped. Every manager reads
 * every other manager's entries, so the reads are what this costs per task: they are made once per XREAD
 * reply for all its entries, and not at all for a task whose end is known by then (`deliver`). Another
 * manager's submission wakes the dispatcher at once (`onRemoteWork`) and is announced later (`late`), from
 * its final entry or from the record a claim here got with the job (`claimedHere`), seldom from a read.
 */
import type { Redis } from 'ioredis';
import type { TaskEvent } from '../task-queue.js';
import type { TaskRecord } from '../task.js';
import { copyTask } from '../task-record.js';
import { taskIdOf, type FleetKeys } from './keys.js';
import { parseRecord } from './job-record.js';

type Listener = (event: TaskEvent) => void;

/** How long one blocking read waits (new queues are announced on a stream of their own, read with the rest). */
const BLOCK_MS = 1_000;
/** The name the new-queues stream goes by among the queues read. */
const NEW_QUEUES = '\u0000new-queues';
/** The entries whose record is read from the job (a final entry carries it). */
const READ_EVENTS = new Set(['added', 'active', 'progress', 'delayed', 'stalled']);

/**
 * Entries that only inform observers, and how long they wait for their task's next entry (`deliver`). An
 * `added` entry is work for the dispatcher, which is told of it apart, before the wait.
 */
const DEFERRED_EVENTS = new Set(['added', 'active', 'progress']);
const DEFER_MS = 250;

/** A stream entry that may be news here: its job's task and, for a final one, the record it carries. */
interface Entry {
  queue: string;
  jobId: string;
  taskId: string;
  event: string;
  final?: TaskRecord;
}

/** Own entries not seen again within this long are forgotten (the stream may have been trimmed). */
const OWN_TTL_MS = 60_000;

export class TaskEvents {
  private readonly listeners = new Set<Listener>();
  private readonly workListeners = new Set<(n: number) => void>();
  /**
   * Tasks whose submission was announced here (made here, or read), until their end is: a claim here
   * announces a submission it finds not yet announced (`claimedHere`), and must not announce one twice.
   */
  private readonly announcedAdds = new Set<string>();
  /** `queue|jobId|event` → how many such entries this process caused and has not yet seen. */
  private readonly own = new Map<string, { n: number; at: number }>();
  private running: Promise<void> | undefined;
  /** Entries held back by `deliver`, by job, in stream order; announced when the timer fires. */
  private readonly deferred = new Map<string, Entry[]>();
  private flushTimer: NodeJS.Timeout | undefined;
  /** The announcing in progress: a timer's flush and a read's entries take turns, never interleave. */
  private delivering: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly keys: FleetKeys,
    private readonly command: Redis,
    private readonly reader: () => Redis,
    /** Many tasks' records in one round trip (undefined for one without a readable job). */
    private readonly readTasks: (
      pairs: { queue: string; taskId: string }[],
    ) => Promise<(TaskRecord | undefined)[]>,
    private readonly onError: (err: unknown) => void,
    /** Whether this process holds the task under this lease (its claim announced it already). */
    private readonly holdsHere: (taskId: string, leaseToken: string | undefined) => boolean,
    /** Sees every entry read, before anything else (the queue is '' for the new-queues stream). */
    private readonly onEntry: (queue: string, event: string) => void,
  ) {}

  get size(): number {
    return this.listeners.size;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    this.running ??= this.loop();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once the reader has taken its starting point in every stream. */
  ready = Promise.resolve();

  onRemoteWork(listener: (n: number) => void): () => void {
    this.workListeners.add(listener);
    this.running ??= this.loop();
    return () => {
      this.workListeners.delete(listener);
    };
  }

  emit(kind: TaskEvent['kind'], task: TaskRecord, late = false): void {
    if (kind === 'finished') this.announcedAdds.delete(task.id);
    else if (kind === 'submitted' || kind === 'routed') this.noteSubmission(task.id);
    if (this.listeners.size === 0) return;
    // One copy for all listeners, as the memory store does: the store's own record is what must not change.
    const event: TaskEvent = late ? { kind, task: copyTask(task), late } : { kind, task: copyTask(task) };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not undo or block a state change that has already happened.
      }
    }
  }

  /** This process is about to cause `event` on the job: its stream entry is not news here. */
  caused(queue: string, jobId: string, event: string): void {
    const key = `${queue}|${jobId}|${event}`;
    const entry = this.own.get(key);
    if (entry) {
      entry.n++;
      entry.at = Date.now();
    } else this.own.set(key, { n: 1, at: Date.now() });
    if (this.own.size > 50_000) this.forgetOld();
  }

  /**
   * A claim here took a job with `record` (its record as queued) before telling anyone: entries of it held
   * back here are announced first, from that record, and another process's first submission of it not
   * yet read here is announced now (its entry, when read, is then skipped): listeners see a task's
   * submission before its claim.
   */
  claimedHere(queue: string, jobId: string, record: TaskRecord): void {
    if (this.listeners.size === 0) return;
    const key = `${queue}|${record.id}`;
    const waiting = this.deferred.get(key);
    if (waiting) {
      this.deferred.delete(key);
      for (const e of waiting) this.announce(e.event, record);
      return;
    }
    if (record.attempts.length > 0 || this.announcedAdds.has(record.id)) return;
    this.caused(queue, jobId, 'added');
    this.announce('added', record);
  }

  private noteSubmission(taskId: string): void {
    if (this.announcedAdds.size >= 50_000) {
      // Tasks whose end was never seen here (their entries trimmed away): the oldest half is forgotten.
      let n = 25_000;
      for (const id of this.announcedAdds) {
        if (n-- <= 0) break;
        this.announcedAdds.delete(id);
      }
    }
    this.announcedAdds.add(taskId);
  }

  stop(): void {
    this.stopped = true;
    this.listeners.clear();
    this.workListeners.clear();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.deferred.clear();
  }

  private forgetOld(): void {
    const cutoff = Date.now() - OWN_TTL_MS;
    for (const [key, entry] of this.own) if (entry.at < cutoff) this.own.delete(key);
  }

  private consumeOwn(queue: string, jobId: string, event: string): boolean {
    const key = `${queue}|${jobId}|${event}`;
    const entry = this.own.get(key);
    if (!entry) return false;
    if (--entry.n <= 0) this.own.delete(key);
    return true;
  }

  private async loop(): Promise<void> {
    let ready: () => void = () => undefined;
    this.ready = new Promise((resolve) => (ready = resolve));
    const last = new Map<string, string>();
    let since = '0';
    for (;;) {
      if (this.stopped) return;
      try {
        // Entries from now on (Redis's clock: stream ids are its milliseconds), in queues found later too.
        // XREAD returns ids after the one given, and an entry of this very millisecond may be `<ms>-0`:
        // start from the millisecond before.
        const [sec, usec] = await this.reader().time();
        since = `${Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - 1}-0`;
        for (const q of await this.command.smembers(this.keys.queues)) last.set(q, since);
        last.set(NEW_QUEUES, since);
        break;
      } catch (err) {
        this.onError(err);
        await new Promise((r) => setTimeout(r, BLOCK_MS));
      }
    }
    ready();
    while (!this.stopped) {
      try {
        const names = [...last.keys()];
        const streams = names.map((q) =>
          q === NEW_QUEUES ? this.keys.newQueues : `${this.keys.bull(q)}events`,
        );
        const reply = await this.reader().xread(
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          ...streams,
          ...names.map((q) => last.get(q) ?? since),
        );
        if (this.stopped || !reply) continue;
        const batch: Entry[] = [];
        let work = 0;
        for (const [stream, entries] of reply) {
          const queue = names[streams.indexOf(stream)];
          if (queue === undefined) continue;
          for (const [id, fields] of entries) {
            last.set(queue, id);
            this.onEntry(queue === NEW_QUEUES ? '' : queue, fields[1] ?? '');
            if (queue === NEW_QUEUES) {
              const name = fields[1];
              if (fields[0] === 'queue' && name !== undefined && !last.has(name)) last.set(name, since);
            } else {
              const entry = this.entryOf(queue, fields);
              if (entry === 'work') work++;
              else if (entry) {
                if (entry.event === 'added') work++;
                batch.push(entry);
              }
            }
          }
        }
        if (work > 0) for (const listener of this.workListeners) listener(work);
        await this.inTurn(() => this.deliver(batch));
      } catch (err) {
        if (this.stopped) return;
        this.onError(err);
        await new Promise((r) => setTimeout(r, BLOCK_MS));
      }
    }
  }

  /**
   * An entry that may be news to this process's listeners; 'work' for another process's submission when
   * nobody listens to events; undefined for anything else.
   */
  private entryOf(queue: string, fields: string[]): Entry | 'work' | undefined {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
    const event = f.event;
    const jobId = f.jobId;
    if (!event || !jobId || !jobId.startsWith('t_')) return undefined;
    // A claim made here is known only once BullMQ hands the job over, maybe after its entry was read: an
    // `active` entry is checked against this process's claims when it is announced (`announceAll`).
    if (event !== 'active' && this.consumeOwn(queue, jobId, event)) return undefined;
    // A job back in wait from active (a manager's graceful hand-back, or a claimant that does not serve it):
    // work for the dispatcher, which nothing else would tell of it.
    if (event === 'waiting') return f.prev === 'active' ? 'work' : undefined;
    if (this.listeners.size === 0) return event === 'added' ? 'work' : undefined;
    const taskId = taskIdOf(jobId);
    if (event === 'completed' || event === 'failed') {
      const json = event === 'completed' ? f.returnvalue : f.failedReason;
      if (!json) return undefined;
      try {
        const t = parseRecord(json, `${queue}:${jobId}`);
        return t.id === taskId ? { queue, jobId, taskId, event, final: t } : undefined;
      } catch {
        // Not a record: a leftover job finished by a claim (moved elsewhere), nothing to announce.
        return undefined;
      }
    }
    // `stalled`: BullMQ's stalled check moved the job of a lost attempt back to wait (see job-record.ts).
    if (!READ_EVENTS.has(event)) return undefined;
    return { queue, jobId, taskId, event };
  }

  /**
   * Takes one read's entries in stream order. `active` and `progress` entries only inform observers (the
   * dispatcher acts on submissions, retries and ends): they wait up to DEFER_MS, so that a task which ends
   * meanwhile, as most do, is announced from its final entry without reading its job at all. Whatever
   * else comes for a job first announces what waits for it, keeping each task's events in order.
   */
  private async deliver(batch: Entry[]): Promise<void> {
    if (batch.length === 0) return;
    const finalIn = new Set<string>();
    for (const e of batch) if (e.final) finalIn.add(`${e.queue}|${e.taskId}`);
    const work: Entry[] = [];
    for (const e of batch) {
      const key = `${e.queue}|${e.taskId}`;
      if (DEFERRED_EVENTS.has(e.event) && !finalIn.has(key)) {
        const waiting = this.deferred.get(key);
        if (waiting) waiting.push(e);
        else this.deferred.set(key, [e]);
        continue;
      }
      const waiting = this.deferred.get(key);
      if (waiting) {
        this.deferred.delete(key);
        work.push(...waiting);
      }
      work.push(e);
    }
    if (this.deferred.size > 0) this.flushTimer ??= setTimeout(() => this.flushDeferred(), DEFER_MS);
    await this.announceAll(work);
  }

  private flushDeferred(): void {
    this.flushTimer = undefined;
    this.inTurn(async () => {
      if (this.stopped) return;
      const work = [...this.deferred.values()].flat();
      this.deferred.clear();
      await this.announceAll(work);
    }).catch((err: unknown) => this.onError(err));
  }

  /** Runs `fn` after the announcing in progress; a failed turn does not stop the ones after it. */
  private inTurn(fn: () => Promise<void>): Promise<void> {
    const turn = this.delivering.then(fn);
    this.delivering = turn.catch(() => undefined);
    return turn;
  }

  /**
   * Announces entries in order. The records they need are read in one round trip, after the read: what a
   * record read late says is what the reader would have read anyway (an entry names a change, the job
   * holds the latest). A job whose final entry is among them is not read: its final record is that.
   */
  private async announceAll(entries: Entry[]): Promise<void> {
    const work = entries.filter((e) => e.event !== 'active' || !this.consumeOwn(e.queue, e.jobId, e.event));
    if (work.length === 0) return;
    const finalOf = new Map<string, TaskRecord>();
    for (const e of work) if (e.final) finalOf.set(`${e.queue}|${e.taskId}`, e.final);
    const wanted = new Map<string, { queue: string; taskId: string }>();
    for (const e of work) {
      const key = `${e.queue}|${e.taskId}`;
      if (!e.final && !finalOf.has(key)) wanted.set(key, { queue: e.queue, taskId: e.taskId });
    }
    const pairs = [...wanted.values()];
    const records = pairs.length ? await this.readTasks(pairs).catch(() => pairs.map(() => undefined)) : [];
    const read = new Map<string, TaskRecord | undefined>();
    [...wanted.keys()].forEach((key, i) => read.set(key, records[i]));
    for (const e of work) {
      if (e.final) {
        this.emit('finished', e.final);
        continue;
      }
      const key = `${e.queue}|${e.taskId}`;
      const t = read.has(key) ? read.get(key) : finalOf.get(key);
      if (t) this.announce(e.event, t);
    }
  }

  private announce(event: string, t: TaskRecord): void {
    if (event === 'added') {
      if (t.state === 'queued')
        this.emit(t.attempts.length === 0 ? (t.sessionWorker ? 'routed' : 'submitted') : 'retrying', t, true);
      // Claimed (or done) by the time it was read here: still announce the submission, as it was made.
      else if (t.attempts.length <= 1 && t.attempt <= 1) this.emit('submitted', asSubmitted(t), true);
    } else if (event === 'active') {
      if (t.state === 'assigned' && !this.holdsHere(t.id, t.leaseToken)) this.emit('claimed', t);
    } else if (event === 'progress') {
      if (t.state === 'running') this.emit(t.progress ? 'progress' : 'running', t);
    } else if (t.state === 'queued') this.emit('retrying', t);
  }
}

/** A record as its submission created it (createTaskRecord's fields), for a submission read back late. */
function asSubmitted(t: TaskRecord): TaskRecord {
  const s: TaskRecord = {
    id: t.id,
    capability: t.capability,
    payload: t.payload,
    priority: t.priority,
    timeoutMs: t.timeoutMs,
    maxAttempts: t.maxAttempts,
    state: 'queued',
    attempt: 0,
    createdAt: t.createdAt,
    updatedAt: t.createdAt,
    notBefore: t.createdAt,
    attempts: [],
  };
  if (t.idempotencyKey !== undefined) s.idempotencyKey = t.idempotencyKey;
  if (t.sessionId !== undefined) s.sessionId = t.sessionId;
  if (t.session !== undefined) s.session = t.session;
  return s;
}
