import type { BalancingStrategy, BalancingTask, Candidate } from './strategy.js';

/** Each call takes the next candidate in turn; ignores load beyond the free-slot filter before it. */
export class RoundRobinStrategy implements BalancingStrategy {
  readonly name = 'round-robin';
  private counter = 0;

  select(candidates: readonly Candidate[], _task?: BalancingTask): Candidate | undefined {
    if (candidates.length === 0) return undefined;
    const pick = candidates[this.counter % candidates.length];
    this.counter = (this.counter + 1) % Number.MAX_SAFE_INTEGER;
    return pick;
  }
}
