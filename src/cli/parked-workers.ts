/**
 * Auto-recovery's last step in `fleet up`: a worker process the supervisor parked (it kept crashing) shows
 * as status `error` with a `worker_parked` alert until someone restarts it (POST /api/workers/:id/restart
 * un-parks it), rather than as a plain `offline` that looks like it will come back by itself.
 */
import { normalizeEndpoint, type WorkerManager } from '../manager/public.js';
import type { SupervisedChild, Supervisor } from './supervisor.js';

export function watchParkedWorkers(manager: WorkerManager, supervisor: Supervisor): () => void {
  /** endpoint → the parked child's id */
  const parked = new Map<string, string>();
  const endpointOf = (child: SupervisedChild) =>
    normalizeEndpoint(`ws://${child.spec.host}:${child.spec.port}/ws`);
  const workerAt = (endpoint: string) => manager.workerAt(endpoint);

  const markError = (endpoint: string) => {
    void manager.markWorkerError(endpoint).catch(() => undefined);
  };

  const resolve = (child: SupervisedChild, why: string) => {
    const endpoint = endpointOf(child);
    if (parked.get(endpoint) !== child.id) return;
    parked.delete(endpoint);
    manager.publishEvent({
      type: 'alert',
      at: Date.now(),
      level: 'error',
      kind: 'worker_parked',
      key: `worker_parked:${endpoint}`,
      message: `${child.spec.kind} on port ${child.spec.port} ${why}`,
      workerType: child.spec.kind,
      endpoint,
      resolved: true,
    });
  };

  const offSupervisor = supervisor.on((event) => {
    if (event.kind === 'parked') {
      const endpoint = endpointOf(event.child);
      parked.set(endpoint, event.child.id);
      markError(endpoint);
      const worker = workerAt(endpoint);
      manager.publishEvent({
        type: 'alert',
        at: Date.now(),
        level: 'error',
        kind: 'worker_parked',
        key: `worker_parked:${endpoint}`,
        message: event.reason,
        workerType: event.child.spec.kind,
        ...(worker ? { workerId: worker.workerId } : {}),
        endpoint,
      });
    } else if (event.kind === 'started') resolve(event.child, 'was restarted');
    else if (event.kind === 'stopped') resolve(event.child, 'was stopped');
  });

  // The dispatcher marks a worker offline when its socket closes, which can come after the park: the
  // parked state must win, or the board would show a dead worker as merely offline.
  const offManager = manager.subscribe((event) => {
    if (event.type !== 'worker' || event.kind === 'unregistered') return;
    if (event.worker.status === 'offline' && parked.has(event.worker.endpoint))
      markError(event.worker.endpoint);
  });

  return () => {
    offSupervisor();
    offManager();
  };
}
