import { compareLoad, type BalancingStrategy, type BalancingTask, type Candidate } from './strategy.js';

/**
 * Two random choices, keep the less loaded (Mitzenmacher): nearly as even as least-load, but workers whose
 * load snapshot is equally stale do not all receive the same burst.
 */
export class PowerOfTwoStrategy implements BalancingStrategy {
  readonly name = 'power-of-two';

  constructor(private readonly random: () => number = Math.random) {}

  select(candidates: readonly Candidate[], _task?: BalancingTask): Candidate | undefined {
    const n = candidates.length;
    if (n <= 1) return candidates[0];
    const i = Math.min(n - 1, Math.floor(this.random() * n));
    // A second index distinct from the first: draw from the n-1 others.
    let j = Math.min(n - 2, Math.floor(this.random() * (n - 1)));
    if (j >= i) j += 1;
    const a = candidates[i] as Candidate;
    const b = candidates[j] as Candidate;
    return compareLoad(b, a) < 0 ? b : a;
  }
}
