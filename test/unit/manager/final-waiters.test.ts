import { describe, expect, it } from 'vitest';
import { FinalWaiters, type FinalWaiter } from '../../../src/manager/final-waiters.js';
import type { TaskRecord } from '../../../src/manager/queue/task.js';
import { FleetError } from '../../../src/protocol/errors.js';

const task = (id: string) => ({ id, state: 'succeeded' }) as TaskRecord;

function recorder(log: string[], name: string): FinalWaiter {
  return {
    final: (t) => log.push(`${name}:${t.id}`),
    fail: (err) => log.push(`${name}:${err.code}`),
  };
}

describe('FinalWaiters', () => {
  it('hands a final task to each waiter of its id once, and to no other', () => {
    const waiters = new FinalWaiters();
    const log: string[] = [];
    for (const name of ['a', 'b', 'c']) waiters.add('t1', recorder(log, name));
    waiters.add('t2', recorder(log, 'd'));
    waiters.settle(task('t1'));
    waiters.settle(task('t1'));
    expect(log.sort()).toEqual(['a:t1', 'b:t1', 'c:t1']);
    expect(waiters.size).toBe(1);
  });

  it('removes a waiter from the head, the middle or the end of its list, and ignores one already gone', () => {
    for (const gone of [0, 1, 2]) {
      const waiters = new FinalWaiters();
      const log: string[] = [];
      const list = ['a', 'b', 'c'].map((name) => recorder(log, name));
      for (const w of list) waiters.add('t', w);
      waiters.remove('t', list[gone]!);
      waiters.remove('t', list[gone]!);
      waiters.settle(task('t'));
      expect(log.sort()).toEqual(['a:t', 'b:t', 'c:t'].filter((_, i) => i !== gone));
      waiters.remove('t', list[0]!);
      expect(waiters.size).toBe(0);
    }
  });

  it('releases every waiter of every task on failAll, each with its own error', () => {
    const waiters = new FinalWaiters();
    const errors: FleetError[] = [];
    const w: FinalWaiter = { final: () => undefined, fail: (err) => errors.push(err) };
    waiters.add('t1', w);
    waiters.add('t1', { ...w });
    waiters.add('t2', { ...w });
    waiters.failAll(() => new FleetError('shutting_down', 'stopping'));
    expect(errors.map((e) => e.code)).toEqual(['shutting_down', 'shutting_down', 'shutting_down']);
    expect(new Set(errors).size).toBe(3);
    expect(waiters.size).toBe(0);
  });
});
