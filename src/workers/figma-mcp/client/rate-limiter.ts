/**
 * One token bucket per Figma rate tier. Figma counts requests per token per minute per tier, so spending
 * our own budget before Figma sees the request turns most 429s into a short local wait. A wait that would
 * overrun the caller's deadline is refused at once with the same structured error a real 429 produces.
 */
import { FleetError } from '../../../protocol/errors.js';
import { sleep } from '../core/abort.js';

export interface TierLimit {
  per_minute: number;
  burst?: number | undefined;
}

export class TierRateLimiter {
  private readonly buckets = new Map<
    string,
    { tokens: number; updated: number; capacity: number; perMs: number }
  >();

  constructor(
    limits: Record<string, TierLimit>,
    private readonly now: () => number = Date.now,
  ) {
    for (const [tier, l] of Object.entries(limits)) {
      const capacity = l.burst ?? Math.max(1, Math.floor(l.per_minute));
      this.buckets.set(tier, {
        tokens: capacity,
        updated: this.now(),
        capacity,
        perMs: l.per_minute / 60_000,
      });
    }
  }

  /** Takes one token, waiting for it when the wait ends before `deadline`. */
  async take(tier: string, signal: AbortSignal, deadline: number): Promise<void> {
    const b = this.buckets.get(tier);
    if (!b) return;
    for (;;) {
      const t = this.now();
      b.tokens = Math.min(b.capacity, b.tokens + (t - b.updated) * b.perMs);
      b.updated = t;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return;
      }
      const waitMs = Math.ceil((1 - b.tokens) / b.perMs);
      if (t + waitMs > deadline) {
        throw new FleetError(
          'figma_rate_limited',
          `the local ${tier} budget is spent; the next request is possible in ${Math.ceil(waitMs / 1000)} s`,
          {
            details: { retryAfter: Math.ceil(waitMs / 1000), tier, limitType: 'local', planTier: null },
          },
        );
      }
      await sleep(waitMs, signal);
    }
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [tier, b] of this.buckets)
      out[tier] = Math.floor(Math.min(b.capacity, b.tokens + (this.now() - b.updated) * b.perMs));
    return out;
  }
}
