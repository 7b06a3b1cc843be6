import { describe, expect, it } from 'vitest';

type NiceTicks = (
  max: number,
  options?: { integer?: boolean; target?: number },
) => { max: number; step: number; ticks: number[]; decimals: number };

// The dashboard's own browser module, loaded as the page loads it (plain ES module, no build step).
const chartModule = new URL('../../../../src/manager/dashboard/static/chart.js', import.meta.url).href;
const { niceTicks } = (await import(chartModule)) as {
  niceTicks: NiceTicks;
};

const labels = (max: number, integer = false) => {
  const a = niceTicks(max, { integer });
  return a.ticks.map((v) => v.toFixed(a.decimals));
};

describe('chart axis ticks', () => {
  it('counts get whole, distinct ticks (queue depth 2 was 0, 1, 1, 2, 2)', () => {
    expect(labels(2, true)).toEqual(['0', '1', '2']);
    expect(labels(1, true)).toEqual(['0', '1']);
    expect(labels(3, true)).toEqual(['0', '1', '2', '3']);
    expect(labels(7, true)).toEqual(['0', '2', '4', '6', '8']);
    expect(labels(0, true)).toEqual(['0', '1']);
    expect(labels(9500, true)).toEqual(['0', '2000', '4000', '6000', '8000', '10000']);
  });

  it('small rates get steps of 1, 2 or 5 × 10^k with the digits they need (tasks/s 1.0 was 0.3, 0.5, 0.8)', () => {
    expect(labels(1)).toEqual(['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
    expect(labels(0.3)).toEqual(['0.0', '0.1', '0.2', '0.3']);
    expect(labels(0.07)).toEqual(['0.00', '0.02', '0.04', '0.06', '0.08']);
    expect(labels(13)).toEqual(['0', '5', '10', '15']);
    expect(labels(0)).toEqual(['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
  });

  it('always covers the maximum, starts at 0, never repeats a label, never shows float noise', () => {
    for (const integer of [false, true]) {
      for (let i = 0; i < 500; i++) {
        const max = integer
          ? Math.floor(Math.random() * 10_000)
          : Math.random() * 10 ** (Math.random() * 8 - 4);
        const a = niceTicks(max, { integer });
        expect(a.ticks[0]).toBe(0);
        expect(a.max).toBeGreaterThanOrEqual(max);
        expect(a.ticks.length).toBeGreaterThanOrEqual(2);
        expect(a.ticks.length).toBeLessThanOrEqual(6);
        const text = a.ticks.map((v) => v.toFixed(a.decimals));
        expect(new Set(text).size).toBe(text.length);
        // No float noise such as 0.30000000000000004: each tick is exact at the labels' digits.
        for (const v of a.ticks) expect(Number(v.toFixed(a.decimals))).toBe(v);
        if (integer) for (const v of a.ticks) expect(Number.isInteger(v)).toBe(true);
      }
    }
  });
});
