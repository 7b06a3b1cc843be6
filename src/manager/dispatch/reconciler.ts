/**
 * Reconciliation (issue 14 point 4): a worker whose manager connection dropped keeps running its tasks and
 * keeps the answers of those that finished meanwhile (worker section `reconnect_grace`). When a manager, the
 * same one or another sharing the store, connects, the worker's `hello` lists them with their leases
 * (`inFlight`, `finished`), and this module decides each against the store before any of the worker's other
 * frames is read:
 *
 * - the lease is still current and was given to this worker: the manager takes it over (`queue.adopt`; with
 *   Redis it now renews the lock), the dispatcher watches it again with its deadline, and the answer the
 *   worker sends next is committed through the ordinary lease check. The task is not run again.
 * - anything else (already re-queued, given to another worker, finished, unknown): the worker gets a
 *   `task.cancel` for exactly that lease, so a task never runs on two connected workers at once.
 * - a lease of another worker (a confused or hostile peer): refused, counted, nothing changes but the cancel
 *   sent to the reporter itself.
 */
import type { Logger } from 'pino';
import { toFleetError } from '../../protocol/errors.js';
import type { Hello } from '../../protocol/messages.js';
import type { ManagerMetrics } from '../metrics/manager-metrics.js';
import type { TaskQueue } from '../queue/task-queue.js';
import type { TaskRecord } from '../queue/task.js';

export type ReconcileOutcome = 'adopted' | 'cancelled' | 'refused';

export interface ReportedLease {
  taskId: string;
  attempt: number;
  leaseToken: string;
  finished: boolean;
}

export interface ReconcileHost {
  queue: TaskQueue;
  logger: Logger;
  metrics?: ManagerMetrics;
  /** The lease this manager tracks for the task, if any. */
  trackedLease(taskId: string): { workerId: string; leaseToken: string } | undefined;
  /** Watches an adopted task again on the worker: lease, slot, deadline. */
  restore(workerId: string, task: TaskRecord): void;
  /** Tells the reporting worker to stop the task of that lease. */
  cancelOnWorker(workerId: string, taskId: string, leaseToken: string, reason: string): void;
}

/**
 * More than a worker could honestly hold is not looked up: each entry costs a store read, and a hello is
 * otherwise bounded only by the frame cap.
 */
export function reportBound(maxConcurrency: number): number {
  return Math.max(64, maxConcurrency * 8);
}

/** The leases a hello reports, each task once (a task cannot be both running and finished). */
export function reportedLeases(hello: Hello): ReportedLease[] {
  const seen = new Set<string>();
  const out: ReportedLease[] = [];
  for (const [list, finished] of [
    [hello.finished ?? [], true],
    [hello.inFlight ?? [], false],
  ] as const) {
    for (const l of list) {
      if (seen.has(l.taskId)) continue;
      seen.add(l.taskId);
      out.push({ taskId: l.taskId, attempt: l.attempt, leaseToken: l.leaseToken, finished });
    }
  }
  return out;
}

export async function reconcile(
  host: ReconcileHost,
  workerId: string,
  maxConcurrency: number,
  reported: ReportedLease[],
): Promise<Record<ReconcileOutcome, number>> {
  const counts: Record<ReconcileOutcome, number> = { adopted: 0, cancelled: 0, refused: 0 };
  const count = (outcome: ReconcileOutcome) => {
    counts[outcome]++;
    host.metrics?.reconciled.inc({ outcome });
  };
  const bound = reportBound(maxConcurrency);
  await Promise.all(
    reported.map(async (r, i) => {
      if (i >= bound) {
        count('refused');
        return;
      }
      const tracked = host.trackedLease(r.taskId);
      if (tracked) {
        if (tracked.workerId === workerId && tracked.leaseToken === r.leaseToken) {
          count('adopted'); // this manager never let go of it (the connection was replaced)
          return;
        }
        const othersLease = tracked.leaseToken === r.leaseToken;
        if (othersLease)
          host.logger.warn(
            { workerId, taskId: r.taskId, holder: tracked.workerId },
            'a worker reported the lease of a task running on another worker; refused',
          );
        host.cancelOnWorker(workerId, r.taskId, r.leaseToken, 'the task runs under another lease');
        count(othersLease ? 'refused' : 'cancelled');
        return;
      }
      try {
        const task = await host.queue.adopt(r.taskId, r.leaseToken, workerId);
        host.restore(workerId, task);
        count('adopted');
      } catch (err) {
        const e = toFleetError(err);
        const refused = e.code === 'conflict';
        host.logger[refused ? 'warn' : 'info'](
          { workerId, taskId: r.taskId, attempt: r.attempt, code: e.code },
          refused
            ? 'a worker reported a lease given to another worker; refused'
            : `a reported task was not taken over: ${e.message}`,
        );
        // Whatever the reason (stale, unknown, the store unreachable), the worker must not run on a task no
        // manager watches: it would finish into a stale lease while the task runs again elsewhere.
        host.cancelOnWorker(workerId, r.taskId, r.leaseToken, `not taken over after reconnect (${e.code})`);
        count(refused ? 'refused' : 'cancelled');
      }
    }),
  );
  if (reported.length > 0)
    host.logger.info({ workerId, ...counts }, 'reconciled the tasks a reconnecting worker reported');
  return counts;
}
