import { compareLoad, type BalancingStrategy, type BalancingTask, type Candidate } from './strategy.js';

/**
 * The default: the lowest in-flight/capacity ratio, then the fewest tasks in flight. Equally loaded workers
 * take turns, so an idle fleet does not send every first task to the same worker.
 */
export class LeastLoadStrategy implements BalancingStrategy {
  readonly name = 'least-load';
  private turn = 0;

  select(candidates: readonly Candidate[], _task?: BalancingTask): Candidate | undefined {
    const first = candidates[0];
    if (!first) return undefined;
    let best: Candidate[] = [first];
    for (const c of candidates.slice(1)) {
      const order = compareLoad(c, best[0] as Candidate);
      if (order < 0) best = [c];
      else if (order === 0) best.push(c);
    }
    return best[this.turn++ % best.length];
  }
}
