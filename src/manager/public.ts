/**
 * The manager's public module: what code outside the manager (the CLI, the dashboard, embedders) may use.
 * `WorkerManager`'s methods are the front door; the types here describe what goes in and comes out.
 * ESLint (`no-restricted-imports` in eslint.config.js) keeps `cli/` and `manager/dashboard/` to this module,
 * the `manager/http/*` helpers, `client/` and `protocol/`: the manager's rooms can change behind it.
 */
export {
  WorkerManager,
  normalizeEndpoint,
  type ConnectingInterface,
  type ManagerEvent,
  type RegisterWorkerConfig,
  type ShutdownReport,
  type SubscribeOptions,
  type WorkerManagerDeps,
} from './manager.js';
export { systemClock, type Clock, type TimerHandle } from './clock.js';
export { Lru } from './queue/lru.js';
export type { AlertEvent, OperatorEvent, PublishedAlertKind, ScalingEvent } from './operator-events.js';
export { TASK_STATES, isFinal, type TaskRecord, type TaskState, type TaskSubmission } from './queue/task.js';
export { emptyLoad, loadByType, takesNewWork, utilization, type TypeLoad } from './registry/fleet-load.js';
export type { WorkerStatusView } from './registry/worker-registry.js';
export { createManagerStores, generateManagerId, type ManagerStores } from './store-factory.js';
export * from './scaling/index.js';
