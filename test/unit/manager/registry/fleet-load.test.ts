import { describe, expect, it } from 'vitest';
import {
  loadByType,
  utilization,
  type WorkerLoadInput,
} from '../../../../src/manager/registry/fleet-load.js';

const w = (o: Partial<WorkerLoadInput>): WorkerLoadInput => ({
  workerType: 'echo',
  status: 'online',
  draining: false,
  inFlight: 0,
  maxConcurrency: 4,
  ...o,
});

describe('fleet load: the one definition of capacity', () => {
  it('counts the slots of up workers that take new work; draining, error and offline ones add none', () => {
    const load = loadByType([
      w({ inFlight: 1 }),
      w({ status: 'busy', inFlight: 4 }),
      w({ status: 'busy', draining: true, inFlight: 2 }),
      w({ status: 'error', inFlight: 1 }),
      w({ status: 'offline' }),
    ]).get('echo')!;
    expect(load).toEqual({
      workerType: 'echo',
      workers: 5,
      online: 1,
      busy: 2,
      offline: 1,
      error: 1,
      draining: 1,
      // Tasks still running on the draining and the error worker are demand the fleet carries.
      inFlight: 8,
      capacity: 8,
      free: 3,
    });
    expect(utilization(load, 4)).toBe(12 / 8);
  });

  it('has no utilization without capacity, whatever waits', () => {
    const load = loadByType([
      w({ status: 'online', draining: true, inFlight: 1 }),
      w({ status: 'error' }),
    ]).get('echo')!;
    expect(load.capacity).toBe(0);
    expect(utilization(load, 5)).toBeNull();
  });

  it('keeps worker types apart, and a full worker has no free slot even when it runs over its maximum', () => {
    const load = loadByType([
      w({ workerType: 'a', status: 'busy', inFlight: 6, maxConcurrency: 4 }),
      w({ workerType: 'b', maxConcurrency: 2 }),
    ]);
    expect(load.get('a')).toMatchObject({ capacity: 4, free: 0, inFlight: 6 });
    expect(load.get('b')).toMatchObject({ capacity: 2, free: 2, inFlight: 0 });
  });
});
