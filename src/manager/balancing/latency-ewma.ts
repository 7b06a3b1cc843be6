import { compareLoad, type BalancingStrategy, type BalancingTask, type Candidate } from './strategy.js';

/**
 * Lowest expected wait: smoothed latency times (tasks in flight + 1), the "peak EWMA" cost. A worker with
 * no measurement yet costs 0, so new workers are tried and get measured; ties fall back to least load.
 */
export class LatencyEwmaStrategy implements BalancingStrategy {
  readonly name = 'latency-ewma';

  select(candidates: readonly Candidate[], _task?: BalancingTask): Candidate | undefined {
    let best: Candidate | undefined;
    let bestCost = Number.POSITIVE_INFINITY;
    for (const c of candidates) {
      const cost = (c.ewmaLatencyMs ?? 0) * (c.inFlight + 1);
      if (!best || cost < bestCost || (cost === bestCost && compareLoad(c, best) < 0)) {
        best = c;
        bestCost = cost;
      }
    }
    return best;
  }
}

/** Folds one latency sample into a smoothed value; `alpha` weighs the new sample. */
export function updateEwma(previous: number | undefined, sampleMs: number, alpha = 0.3): number {
  return previous === undefined ? sampleMs : previous + alpha * (sampleMs - previous);
}
