import { describe, expect, it } from 'vitest';
import {
  STRATEGY_NAMES,
  createStrategy,
  distributeTasks,
  selectOptimalWorker,
  type Candidate,
} from '../../../../src/manager/balancing/index.js';
import { ManagerSchema } from '../../../../src/config/schema.js';
import { FleetError } from '../../../../src/protocol/errors.js';

const w = (
  workerId: string,
  capabilities: string[],
  inFlight: number,
  maxConcurrency: number,
  extra: Partial<Candidate> = {},
): Candidate => ({
  workerId,
  workerType: 'any',
  status: 'online',
  capabilities,
  inFlight,
  maxConcurrency,
  ...extra,
});

describe('createStrategy', () => {
  it('resolves every name the config accepts', () => {
    for (const name of STRATEGY_NAMES) expect(createStrategy(name).name).toBe(name);
    // Same names as the config schema accepts, so a valid config always resolves.
    for (const name of STRATEGY_NAMES) expect(ManagerSchema.parse({ strategy: name }).strategy).toBe(name);
    expect(ManagerSchema.safeParse({ strategy: 'fastest' }).success).toBe(false);
  });

  it('refuses an unknown name with config_invalid naming the choices', () => {
    let err: unknown;
    try {
      createStrategy('fastest');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FleetError);
    expect((err as FleetError).code).toBe('config_invalid');
    expect((err as FleetError).message).toContain('fastest');
    for (const name of STRATEGY_NAMES) expect((err as FleetError).message).toContain(name);
  });
});

describe('selectOptimalWorker', () => {
  const fleet = [
    w('py-1', ['python_execution'], 5, 5),
    w('py-2', ['python_execution'], 2, 5),
    w('py-3', ['python_execution'], 0, 5, { status: 'offline' }),
    w('py-4', ['python_execution'], 1, 5, { status: 'error' }),
    w('br-1', ['screenshot'], 0, 4),
  ];

  it('filters by capability, then online with a free slot, then picks', () => {
    const s = createStrategy('least-load');
    expect(selectOptimalWorker(s, fleet, { capability: 'python_execution' })?.workerId).toBe('py-2');
    expect(selectOptimalWorker(s, fleet, { capability: 'screenshot' })?.workerId).toBe('br-1');
    expect(selectOptimalWorker(s, fleet, { capability: 'figma_export' })).toBeUndefined();
    expect(selectOptimalWorker(s, fleet.slice(0, 1), { capability: 'python_execution' })).toBeUndefined();
  });

  it('sends a session task to the worker holding the session, or waits for it', () => {
    const s = createStrategy('least-load');
    const fleetOf = (holder: Partial<Candidate>) => [
      w('idle', ['python_execution'], 0, 5),
      w('holder', ['python_execution'], 4, 5, holder),
    ];
    const task = { capability: 'python_execution', sessionId: 's1', sessionWorker: 'holder' };
    // Least-load alone would pick `idle`.
    expect(selectOptimalWorker(s, fleetOf({}), { capability: 'python_execution' })?.workerId).toBe('idle');
    expect(selectOptimalWorker(s, fleetOf({}), task)?.workerId).toBe('holder');
    // Full, draining (busy), offline or not here at all: the task waits, it never goes to `idle`.
    expect(selectOptimalWorker(s, fleetOf({ inFlight: 5 }), task)).toBeUndefined();
    expect(selectOptimalWorker(s, fleetOf({ status: 'busy' }), task)).toBeUndefined();
    expect(selectOptimalWorker(s, fleetOf({ status: 'offline' }), task)).toBeUndefined();
    expect(selectOptimalWorker(s, fleetOf({}).slice(0, 1), task)).toBeUndefined();
    // The holder without the task's capability is no home for it either.
    expect(selectOptimalWorker(s, fleetOf({ capabilities: ['screenshot'] }), task)).toBeUndefined();
    // The first task of a session (no binding yet) goes wherever the strategy says.
    expect(
      selectOptimalWorker(s, fleetOf({}), { capability: 'python_execution', sessionId: 's2' })?.workerId,
    ).toBe('idle');
  });

  it('keeps session tasks within their holders in a plan', () => {
    const candidates = [w('a', ['c'], 0, 2), w('b', ['c'], 1, 2)];
    const tasks = [
      { id: 's1', capability: 'c', sessionId: 'x', sessionWorker: 'b' },
      { id: 's2', capability: 'c', sessionId: 'x', sessionWorker: 'b' },
      { id: 'f1', capability: 'c' },
    ];
    const plan = distributeTasks(createStrategy('least-load'), candidates, tasks);
    expect(plan.assignments.get('b')).toEqual(['s1']);
    expect(plan.assignments.get('a')).toEqual(['f1']);
    expect(plan.unassigned).toEqual(['s2']);
  });
});

describe('distributeTasks', () => {
  it('assigns within free slots, least loaded first, and reports the rest', () => {
    const candidates = [
      w('py-a', ['python_execution'], 3, 5),
      w('py-b', ['python_execution'], 0, 2),
      w('br', ['screenshot'], 4, 4),
    ];
    const tasks = [
      ...Array.from({ length: 6 }, (_, i) => ({ id: `p${i}`, capability: 'python_execution' })),
      { id: 's0', capability: 'screenshot' },
      { id: 'f0', capability: 'figma_export' },
    ];
    const plan = distributeTasks(createStrategy('least-load'), candidates, tasks);
    const a = plan.assignments.get('py-a') ?? [];
    const b = plan.assignments.get('py-b') ?? [];
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(2);
    expect(plan.assignments.has('br')).toBe(false);
    expect(plan.unassigned.sort()).toEqual(['f0', 'p4', 'p5', 's0']);
    // Least-load: py-b (0/2) before py-a (3/5); the first python task goes to py-b.
    expect(b[0]).toBe('p0');
    expect(candidates.map((c) => c.inFlight)).toEqual([3, 0, 4]);
  });

  it('never exceeds a free slot with any strategy', () => {
    for (const name of STRATEGY_NAMES) {
      const candidates = [
        w('x', ['c'], 1, 3),
        w('y', ['c'], 0, 1),
        w('z', ['c'], 0, 2, { ewmaLatencyMs: 10 }),
      ];
      const tasks = Array.from({ length: 10 }, (_, i) => ({ id: `t${i}`, capability: 'c' }));
      const plan = distributeTasks(createStrategy(name, { random: () => 0.3 }), candidates, tasks);
      expect(plan.assignments.get('x')?.length ?? 0).toBeLessThanOrEqual(2);
      expect(plan.assignments.get('y')?.length ?? 0).toBeLessThanOrEqual(1);
      expect(plan.assignments.get('z')?.length ?? 0).toBeLessThanOrEqual(2);
      expect(plan.unassigned).toHaveLength(5);
    }
  });
});
