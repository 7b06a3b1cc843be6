/**
 * Names in the Redis store (docs/distributed.md: Keys): BullMQ queue names, job ids, and the few keys Fleet
 * keeps next to BullMQ's under `<prefix>:fleet:`. Pure functions, shared by the store's modules.
 */
import { createHash } from 'node:crypto';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskRecord } from '../task.js';

export const QUEUE_NAME_RE = /^[A-Za-z0-9._-]{1,100}$/;

/** BullMQ refuses integer-looking ids and most ids with ':'; `t_` and `~` (never in a task id) avoid both. */
export const jobIdFor = (taskId: string): string => `t_${taskId.replaceAll(':', '~')}`;
export const taskIdOf = (jobId: string): string => jobId.slice(2).replaceAll('~', ':');

export const defaultQueueFor = (capability: string): string =>
  `cap-${capability.replace(/[^A-Za-z0-9._-]/g, '_')}`;

/** The BullMQ queue of the tasks pinned to one worker (any worker id maps to a valid, distinct name). */
const pinQueues = new Map<string, string>();
export function pinQueueFor(workerId: string): string {
  // Asked on every claim: the hash of a worker id is computed once (a fleet has tens of workers, the
  // cache is dropped whole if it ever holds many more).
  let name = pinQueues.get(workerId);
  if (name === undefined) {
    if (pinQueues.size >= 10_000) pinQueues.clear();
    name = `pin-${createHash('sha256').update(workerId).digest('hex').slice(0, 40)}`;
    pinQueues.set(workerId, name);
  }
  return name;
}

/**
 * The queue holding the jobs of tasks that ended without ever being claimed (cancelled while queued, or
 * `session_lost` at submit): BullMQ only finishes an active job, so such a job is re-added here and
 * finished at once by whichever manager takes it; it then lives in this queue's failed set.
 */
export const ENDED_QUEUE = 'fleet-ended';

/**
 * Fleet priority -1000..1000 (higher first) → BullMQ priority 1..4002 (lower first; 0 would bypass
 * priority). Each Fleet priority has two bands, a retried task's ahead of fresh ones, the same order as the
 * memory store's.
 */
export const bullPriority = (t: Pick<TaskRecord, 'priority' | 'attempt'>): number =>
  2 * (1001 - t.priority) - (t.attempt > 0 ? 1 : 0);

export function checkQueueName(name: string, capability: string): string {
  if (!QUEUE_NAME_RE.test(name)) {
    throw new FleetError(
      'config_invalid',
      `queue name "${name}" for capability "${capability}" must be 1-100 of letters, digits and ._-`,
    );
  }
  return name;
}

/** Fleet's own keys: indexes that BullMQ has no place for. Never a second copy of a task. */
export class FleetKeys {
  constructor(readonly prefix: string) {}
  private k(suffix: string): string {
    return `${this.prefix}:fleet:${suffix}`;
  }
  /** hash task id → the BullMQ queue holding its job (ids are unique fleet-wide; a job id only per queue). */
  get loc(): string {
    return this.k('loc');
  }
  /** hash idempotency key → task id. */
  get idem(): string {
    return this.k('idem');
  }
  /** set of BullMQ queue names in use (stalled checks, listing, the bound). */
  get queues(): string {
    return this.k('queues');
  }
  /**
   * stream: one entry per queue when it is first used, so event readers add its stream without polling.
   * Announces queues, not task changes (those are BullMQ's own events).
   */
  get newQueues(): string {
    return this.k('new-queues');
  }
  session(sessionId: string): string {
    return this.k(`sess:${sessionId}`);
  }
  get sessionPrefix(): string {
    return this.k('sess:');
  }
  workerSessions(workerId: string): string {
    return this.k(`wsess:${workerId}`);
  }
  /** A BullMQ queue's key prefix, `<prefix>:<queue>:`. */
  bull(queue: string): string {
    return `${this.prefix}:${queue}:`;
  }
}
