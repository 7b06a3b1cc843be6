/** How the API shows the manager's records: what a client may see of a task, the per-type summary. */
import type { TaskRecord } from '../queue/task.js';
import { loadByType } from '../registry/fleet-load.js';
import type { WorkerStatusView } from '../registry/worker-registry.js';

export function publicTask(task: TaskRecord): Record<string, unknown> {
  const { leaseToken: _lease, attempts, ...rest } = task;
  return {
    ...rest,
    attempts: attempts.map(({ leaseToken: _l, ...a }) => a),
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
