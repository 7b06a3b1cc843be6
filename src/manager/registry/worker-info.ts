/** The spec's WorkerInfo, as the registry keeps it. */
export const WORKER_STATUSES = ['online', 'offline', 'busy', 'error'] as const;
export type WorkerStatus = (typeof WORKER_STATUSES)[number];

export interface WorkerInfo {
  workerId: string;
  workerType: string;
  endpoint: string;
  port: number;
  status: WorkerStatus;
  capabilities: string[];
  currentLoad: number;
  lastHeartbeat: Date;
}
