/** How the API shows the manager's records: what a client may see of a task, the per-type summary. */
import type { TaskRecord } from '../queue/task.js';
import { loadByType } from '../registry/fleet-load.js';
import type { WorkerStatusView } from '../registry/worker-registry.js';

/**
 * What a client may see of a task: everything but the lease tokens. Every caller serializes the result as
 * JSON, so a token is overwritten with `undefined` (which JSON leaves out) instead of taken out with object
 * rest, whose copy cost several times a spread's on every answer.
 */
export function publicTask(task: TaskRecord): Record<string, unknown> {
  return {
    ...task,
    leaseToken: undefined,
    attempts: task.attempts.map(publicAttempt),
    ...(task.artifacts
      ? {
          artifacts: task.artifacts.map((a) => ({
            ...a,
            url: `/api/tasks/${encodeURIComponent(task.id)}/artifacts/${encodeURIComponent(a.name)}`,
          })),
        }
      : {}),
  };
}

const publicAttempt = (a: TaskRecord['attempts'][number]) => ({ ...a, leaseToken: undefined });

/** Per worker type: `online` counts workers up (online or busy); capacity as registry/fleet-load.ts defines it. */
export function summarize(workers: WorkerStatusView[]) {
  const byType: Record<string, { workers: number; online: number; inFlight: number; capacity: number }> = {};
  for (const [type, t] of loadByType(workers)) {
    byType[type] = {
      workers: t.workers,
      online: t.online + t.busy,
      inFlight: t.inFlight,
      capacity: t.capacity,
    };
  }
  return byType;
}
