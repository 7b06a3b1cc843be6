/**
 * Background work of the Redis store: renewing the locks of the jobs this process holds (the lease stays
 * alive while the worker runs the task), and BullMQ's stalled check over every queue, so a dead manager's
 * jobs go back to their queue once their locks have lapsed. Any manager's check serves the whole fleet.
 */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { TaskRecord } from '../task.js';
import { QUEUE_NAME_RE, type FleetKeys } from './keys.js';
import type { BullJobs } from './jobs.js';

export interface Held {
  queue: string;
  job: Job;
  token: string;
  /** The record as this process last wrote it: the next change is computed from it without a read. */
  task: TaskRecord;
  /** The change of this task in progress here, so the next waits for it instead of racing it. */
  busy?: Promise<unknown>;
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
