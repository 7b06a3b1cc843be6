import { describe, expect, it } from 'vitest';
import {
  LatencyEwmaStrategy,
  LeastLoadStrategy,
  PowerOfTwoStrategy,
  RoundRobinStrategy,
  filterByCapability,
  filterByStatus,
  loadOf,
  updateEwma,
  type Candidate,
} from '../../../../src/manager/balancing/index.js';

const w = (
  workerId: string,
  inFlight: number,
  maxConcurrency = 4,
  extra: Partial<Candidate> = {},
): Candidate => ({
  workerId,
  workerType: 'python_sandbox',
  status: 'online',
  capabilities: ['python_execution'],
  inFlight,
  maxConcurrency,
  ...extra,
});
const task = { capability: 'python_execution' };
const ids = (list: readonly (Candidate | undefined)[]) => list.map((c) => c?.workerId);

describe('helpers', () => {
  it('filters by capability', () => {
    const list = [w('a', 0), w('b', 0, 4, { capabilities: ['screenshot', 'scraping'] })];
    expect(ids(filterByCapability(list, 'scraping'))).toEqual(['b']);
    expect(filterByCapability(list, 'figma_export')).toEqual([]);
  });

  it('keeps online workers with a free slot', () => {
    const list = [
      w('ok', 1),
      w('full', 4),
      w('off', 0, 4, { status: 'offline' }),
      w('busy', 2, 4, { status: 'busy' }),
      w('err', 0, 4, { status: 'error' }),
      w('zero', 0, 0),
    ];
    expect(ids(filterByStatus(list))).toEqual(['ok']);
    expect(ids(filterByStatus(list, 'busy'))).toEqual(['busy']);
  });

  it('computes load as in-flight over capacity', () => {
    expect(loadOf(w('a', 3, 4))).toBe(0.75);
    expect(loadOf(w('a', 0, 5))).toBe(0);
    expect(loadOf(w('a', 0, 0))).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('LeastLoadStrategy', () => {
  it('picks the lowest ratio, not the lowest count', () => {
    const s = new LeastLoadStrategy();
    // 2/5 = 0.4 beats 1/2 = 0.5 although it runs more tasks.
    expect(s.select([w('small', 1, 2), w('big', 2, 5)], task)?.workerId).toBe('big');
  });

  it('breaks ratio ties by fewer tasks in flight', () => {
    const s = new LeastLoadStrategy();
    expect(s.select([w('a', 2, 4), w('b', 1, 2)], task)?.workerId).toBe('b');
  });

  it('rotates among equally loaded workers', () => {
    const s = new LeastLoadStrategy();
    const list = [w('a', 0), w('b', 0), w('c', 0), w('busy', 3)];
    expect(
      ids([s.select(list, task), s.select(list, task), s.select(list, task), s.select(list, task)]),
    ).toEqual(['a', 'b', 'c', 'a']);
  });

  it('returns undefined for no candidates', () => {
    expect(new LeastLoadStrategy().select([], task)).toBeUndefined();
  });
});

describe('RoundRobinStrategy', () => {
  it('takes each candidate in turn', () => {
    const s = new RoundRobinStrategy();
    const list = [w('a', 3), w('b', 0), w('c', 1)];
    expect(ids(Array.from({ length: 5 }, () => s.select(list, task)))).toEqual(['a', 'b', 'c', 'a', 'b']);
    expect(s.select([], task)).toBeUndefined();
  });
});

describe('PowerOfTwoStrategy', () => {
  it('samples two distinct candidates and keeps the less loaded', () => {
    const draws = [0.0, 0.0]; // i = 0, then j from the others = 1
    const s = new PowerOfTwoStrategy(() => draws.shift() ?? 0);
    expect(s.select([w('a', 3), w('b', 1), w('c', 0)], task)?.workerId).toBe('b');
  });

  it('never compares a worker with itself', () => {
    const s = new PowerOfTwoStrategy(() => 0.99);
    // i = 2 (last), j drawn among the two others lands on index 1 (shifted past nothing).
    expect(s.select([w('a', 0), w('b', 1), w('c', 2)], task)?.workerId).toBe('b');
  });

  it('handles one and zero candidates', () => {
    const s = new PowerOfTwoStrategy(() => 0.5);
    expect(s.select([w('only', 3)], task)?.workerId).toBe('only');
    expect(s.select([], task)).toBeUndefined();
  });

  it('spreads a burst roughly evenly with a real random source', () => {
    const s = new PowerOfTwoStrategy();
    const list = [w('a', 0, 1000), w('b', 0, 1000), w('c', 0, 1000), w('d', 0, 1000)];
    for (let i = 0; i < 400; i++) {
      const c = s.select(list, task) as Candidate;
      c.inFlight += 1;
    }
    const counts = list.map((c) => c.inFlight);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(10);
  });
});

describe('LatencyEwmaStrategy', () => {
  it('prefers the lowest latency × (in-flight + 1)', () => {
    const s = new LatencyEwmaStrategy();
    const fastButBusy = w('fast', 3, 4, { ewmaLatencyMs: 100 }); // 400
    const slowIdle = w('slow', 0, 4, { ewmaLatencyMs: 300 }); // 300
    expect(s.select([fastButBusy, slowIdle], task)?.workerId).toBe('slow');
    expect(s.select([w('fast', 1, 4, { ewmaLatencyMs: 100 }), slowIdle], task)?.workerId).toBe('fast');
  });

  it('tries an unmeasured worker first, ties by load', () => {
    const s = new LatencyEwmaStrategy();
    expect(s.select([w('measured', 0, 4, { ewmaLatencyMs: 5 }), w('new', 1)], task)?.workerId).toBe('new');
    expect(s.select([w('x', 2), w('y', 1)], task)?.workerId).toBe('y');
  });

  it('smooths samples', () => {
    expect(updateEwma(undefined, 100)).toBe(100);
    expect(updateEwma(100, 200, 0.5)).toBe(150);
  });
});
