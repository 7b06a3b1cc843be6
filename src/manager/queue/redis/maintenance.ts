/**
 * Background work of the Redis store: renewing the locks of the jobs this process holds (the lease stays
 * alive while the worker runs the task), and BullMQ's stalled check over every queue, so a dead manager's
 * jobs go back to their queue once their locks have lapsed. Any manager's check serves the whole fleet.
 */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { TaskRecord } from '../task.js';
import { jobIdFor, QUEUE_NAME_RE, type FleetKeys } from './keys.js';
import { FORGET_DANGLING } from './scripts.js';
import type { BullJobs } from './jobs.js';

export interface Held {
  queue: string;
  job: Job;
  token: string;
  /** The record as this process last wrote it: the next change is computed from it without a read. */
  task: TaskRecord;
  /** The job's activations (BullMQ's `ats`) the record accounts for, its claim's included. */
  starts: number;
  /** The change of this task in progress here, so the next waits for it instead of racing it. */
  busy?: Promise<unknown>;
  /** The running mark (or progress) not yet written: other processes read it a moment late (`flushMarks`). */
  mark?: { l: string; a: number; p?: TaskRecord['progress'] };
}

export async function renewLocks(
  jobs: BullJobs,
  held: Map<string, Held>,
  lockDurationMs: number,
): Promise<void> {
  const byQueue = new Map<string, [string, Held][]>();
  for (const entry of held) {
    const list = byQueue.get(entry[1].queue) ?? [];
    list.push(entry);
    byQueue.set(entry[1].queue, list);
  }
  for (const [queueName, list] of byQueue) {
    const failed = await jobs
      .worker(queueName)
      .getBackend()
      .extendLocks(
        list.map(([, h]) => h.job.id ?? ''),
        list.map(([, h]) => h.token),
        lockDurationMs,
      );
    // A lock that could not be extended was lost (expired and recovered elsewhere): BullMQ refuses the
    // old lease from now on; nothing more to do here than to forget it.
    const lost = new Set(failed);
    for (const [taskId, h] of list)
      if (lost.has(h.job.id ?? '') && held.get(taskId) === h) held.delete(taskId);
  }
}

/**
 * BullMQ's stalled check over every queue; `moved` gets the jobs it put back in wait (each also announced
 * on its queue's stream as `stalled`, which every manager's event reader turns into `retrying`).
 */
export async function checkStalled(
  redis: Redis,
  keys: FleetKeys,
  jobs: BullJobs,
  moved: (queue: string, jobIds: string[]) => Promise<void>,
): Promise<void> {
  for (const name of await redis.smembers(keys.queues)) {
    if (!QUEUE_NAME_RE.test(name)) continue;
    const ids = await jobs.worker(name).getBackend().moveStalledJobsToWait();
    if (ids.length > 0) await moved(name, ids);
  }
}

/** Runs `fn` every `ms` while `alive()`, never two at once; returns the timer. */
export function every(
  ms: number,
  fn: () => Promise<void>,
  alive: () => boolean,
  onError: (err: unknown) => void,
): NodeJS.Timeout {
  let running = false;
  const timer = setInterval(() => {
    if (running || !alive()) return;
    running = true;
    fn()
      .catch(onError)
      .finally(() => {
        running = false;
      });
  }, ms);
  timer.unref();
  return timer;
}

/** Where the index sweep is in `loc` and `idem`, and what it found dangling last round. */
export interface SweepState {
  locCursor: string;
  idemCursor: string;
  loc: string[];
  idem: string[];
}

export const newSweepState = (): SweepState => ({ locCursor: '0', idemCursor: '0', loc: [], idem: [] });

/**
 * One round of bounded retention for Fleet's indexes: BullMQ removes finished jobs beyond the retention,
 * and the `loc` and `idem` entries of their tasks must go too, or they would grow with every task ever
 * submitted. Each round scans a slice of both hashes (HSCAN), drops what the previous round already found
 * dangling and is still (FORGET_DANGLING, atomic per entry), and remembers what dangles now.
 */
export async function sweepIndexes(redis: Redis, keys: FleetKeys, state: SweepState): Promise<number> {
  const dropped =
    state.loc.length + state.idem.length > 0
      ? Number(
          await FORGET_DANGLING.run(
            redis,
            [keys.loc, keys.idem],
            [`${keys.prefix}:`, state.loc.length, ...state.loc, ...state.idem],
          ),
        )
      : 0;
  const [locCursor, locFlat] = await redis.hscan(keys.loc, state.locCursor, 'COUNT', 500);
  const [idemCursor, idemFlat] = await redis.hscan(keys.idem, state.idemCursor, 'COUNT', 500);
  state.locCursor = locCursor;
  state.idemCursor = idemCursor;
  const locPairs: [string, string][] = [];
  for (let i = 0; i + 1 < locFlat.length; i += 2) locPairs.push([locFlat[i]!, locFlat[i + 1]!]);
  const exists = locPairs.length
    ? ((await redis
        .pipeline(locPairs.map(([id, q]) => ['exists', `${keys.bull(q)}${jobIdFor(id)}`]))
        .exec()) ?? [])
    : [];
  state.loc = locPairs.filter((_, i) => exists[i]?.[1] === 0).map(([id]) => id);
  const idemPairs: [string, string][] = [];
  for (let i = 0; i + 1 < idemFlat.length; i += 2) idemPairs.push([idemFlat[i]!, idemFlat[i + 1]!]);
  const known = idemPairs.length ? await redis.hmget(keys.loc, ...idemPairs.map(([, id]) => id)) : [];
  state.idem = idemPairs.filter((_, i) => known[i] === null).map(([key]) => key);
  return dropped;
}
