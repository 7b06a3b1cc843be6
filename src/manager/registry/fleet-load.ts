/**
 * The one definition of a worker type's load and capacity. The API's status summary, the dashboard, the
 * `fleet_worker_type_utilization` gauge and the autoscaler all read it here, so the number an operator sees
 * is the number the autoscaler acts on.
 *
 * - capacity: slots that can take a new task: workers that are up (online or busy) and not draining. A
 *   draining worker finishes its tasks but takes nothing new; a worker in `error` or `offline` takes nothing.
 * - inFlight: tasks running anywhere on the type, draining and `error` workers included: they are demand
 *   the fleet still carries. (An offline worker holds none; its tasks went back to the queue.)
 * - free: capacity not in use.
 * - utilization: (in flight + queued) / capacity; null when there is no capacity to divide by.
 */
import type { WorkerStatus } from './worker-info.js';

/** What the load needs to know of a worker; a WorkerStatusView is one. */
export interface WorkerLoadInput {
  workerType: string;
  status: WorkerStatus;
  draining: boolean;
  inFlight: number;
  maxConcurrency: number;
}

export interface TypeLoad {
  workerType: string;
  workers: number;
  /** By status; `busy` is up with every slot taken (or draining). */
  online: number;
  busy: number;
  offline: number;
  error: number;
  /** Up and draining. */
  draining: number;
  inFlight: number;
  capacity: number;
  free: number;
}

/** Whether the worker's slots count as capacity. */
export function takesNewWork(w: WorkerLoadInput): boolean {
  return (w.status === 'online' || w.status === 'busy') && !w.draining;
}

export function emptyLoad(workerType: string): TypeLoad {
  return {
    workerType,
    workers: 0,
    online: 0,
    busy: 0,
    offline: 0,
    error: 0,
    draining: 0,
    inFlight: 0,
    capacity: 0,
    free: 0,
  };
}

/** Load per worker type, in the order the types first appear. */
export function loadByType(workers: Iterable<WorkerLoadInput>): Map<string, TypeLoad> {
  const byType = new Map<string, TypeLoad>();
  for (const w of workers) {
    let t = byType.get(w.workerType);
    if (!t) byType.set(w.workerType, (t = emptyLoad(w.workerType)));
    t.workers += 1;
    t[w.status] += 1;
    t.inFlight += w.inFlight;
    if ((w.status === 'online' || w.status === 'busy') && w.draining) t.draining += 1;
    if (takesNewWork(w)) {
      t.capacity += w.maxConcurrency;
      t.free += Math.max(0, w.maxConcurrency - w.inFlight);
    }
  }
  return byType;
}

/** (in flight + queued) / capacity; null when nothing can take a task. */
export function utilization(load: Pick<TypeLoad, 'inFlight' | 'capacity'>, queued: number): number | null {
  return load.capacity > 0 ? (load.inFlight + queued) / load.capacity : null;
}
