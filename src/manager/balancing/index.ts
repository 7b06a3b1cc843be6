/**
 * Strategies by name (the `manager.strategy` config value), and the spec's selection and distribution
 * algorithms on top of any strategy.
 */
import { FleetError } from '../../protocol/errors.js';
import { LatencyEwmaStrategy } from './latency-ewma.js';
import { LeastLoadStrategy } from './least-load.js';
import { PowerOfTwoStrategy } from './power-of-two.js';
import { RoundRobinStrategy } from './round-robin.js';
import {
  filterByCapability,
  filterByStatus,
  hasFreeSlot,
  type BalancingStrategy,
  type BalancingTask,
  type Candidate,
} from './strategy.js';

export * from './strategy.js';
export { LatencyEwmaStrategy, updateEwma } from './latency-ewma.js';
export { LeastLoadStrategy } from './least-load.js';
export { PowerOfTwoStrategy } from './power-of-two.js';
export { RoundRobinStrategy } from './round-robin.js';

export const STRATEGY_NAMES = ['least-load', 'round-robin', 'power-of-two', 'latency-ewma'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];
export const DEFAULT_STRATEGY: StrategyName = 'least-load';

export interface StrategyOptions {
  /** For power-of-two; injectable so tests are deterministic. */
  random?: () => number;
}

export function createStrategy(name: string, options: StrategyOptions = {}): BalancingStrategy {
  switch (name) {
    case 'least-load':
      return new LeastLoadStrategy();
    case 'round-robin':
      return new RoundRobinStrategy();
    case 'power-of-two':
      return new PowerOfTwoStrategy(options.random);
    case 'latency-ewma':
      return new LatencyEwmaStrategy();
    default:
      throw new FleetError(
        'config_invalid',
        `unknown balancing strategy "${name}"; choose one of: ${STRATEGY_NAMES.join(', ')}`,
        { details: { field: 'manager.strategy', value: name, choices: [...STRATEGY_NAMES] } },
      );
  }
}

/**
 * The one routing decision, for the dispatcher and for planning: candidates with the capability, then online
 * with a free slot, then the strategy's pick. A task whose session lives on a worker (`sessionWorker`) goes
 * to that worker when it has a free slot and otherwise nowhere yet: it waits for a slot there, never takes
 * one elsewhere, where the session's variables and files do not exist.
 *
 * Fleet binds late: the dispatcher asks for a worker for a free slot (`{ capability }`) before it knows the
 * task, and the store's `claim` applies the session half of this rule to the task it hands that worker (a
 * task of a session bound elsewhere is never handed out; see `TaskQueue.claim`).
 */
export function selectOptimalWorker(
  strategy: BalancingStrategy,
  candidates: readonly Candidate[],
  task: BalancingTask,
): Candidate | undefined {
  const capable = filterByCapability(candidates, task.capability);
  if (task.sessionWorker !== undefined) {
    const home = capable.find((c) => c.workerId === task.sessionWorker);
    return home && home.status === 'online' && hasFreeSlot(home) ? home : undefined;
  }
  return strategy.select(filterByStatus(capable, 'online'), task);
}

export interface DistributableTask extends BalancingTask {
  id: string;
}

export interface TaskDistribution {
  /** workerId → task ids, in the order given. */
  assignments: Map<string, string[]>;
  /** Tasks no worker can take now (no capable worker, or no free slot left). */
  unassigned: string[];
}

/**
 * Plans a batch without touching the inputs: each task in turn goes through `selectOptimalWorker`, and the
 * chosen worker's in-flight count rises in the plan, so no worker is given more than its free slots.
 */
export function distributeTasks(
  strategy: BalancingStrategy,
  candidates: readonly Candidate[],
  tasks: readonly DistributableTask[],
): TaskDistribution {
  const plan = candidates.map((c) => ({ ...c }));
  const assignments = new Map<string, string[]>();
  const unassigned: string[] = [];
  for (const task of tasks) {
    const chosen = selectOptimalWorker(strategy, plan, task);
    if (!chosen) {
      unassigned.push(task.id);
      continue;
    }
    chosen.inFlight += 1;
    const list = assignments.get(chosen.workerId);
    if (list) list.push(task.id);
    else assignments.set(chosen.workerId, [task.id]);
  }
  return { assignments, unassigned };
}
