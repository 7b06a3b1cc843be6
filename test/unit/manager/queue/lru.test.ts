import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Lru } from '../../../../src/manager/queue/lru.js';

describe('Lru', () => {
  it('evicts least recently used first; get touches, peek does not', () => {
    const lru = new Lru<number>();
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    expect(lru.get('a')).toBe(1);
    expect(lru.peek('b')).toBe(2);
    expect([...lru.values()]).toEqual([2, 3, 1]);
    expect(lru.shift()).toBe(2);
    lru.set('c', 30);
    expect([...lru.values()]).toEqual([1, 30]);
    expect(lru.delete('a')).toBe(1);
    expect(lru.delete('a')).toBeUndefined();
    expect(lru.size).toBe(1);
    expect(lru.shift()).toBe(30);
    expect(lru.shift()).toBeUndefined();
    expect(lru.has('c')).toBe(false);
  });

  it('matches a reference model under random operations', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), key: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ k: fc.constant('get' as const), key: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ k: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ k: fc.constant('shift' as const), key: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 100 }), (ops) => {
        const lru = new Lru<number>();
        const model: number[] = []; // keys, least recent first
        const touch = (key: number) => {
          model.splice(model.indexOf(key), 1);
          model.push(key);
        };
        for (const { k, key } of ops) {
          const s = String(key);
          if (k === 'set') {
            lru.set(s, key);
            if (model.includes(key)) touch(key);
            else model.push(key);
          } else if (k === 'get') {
            expect(lru.get(s)).toBe(model.includes(key) ? key : undefined);
            if (model.includes(key)) touch(key);
          } else if (k === 'delete') {
            expect(lru.delete(s)).toBe(model.includes(key) ? key : undefined);
            if (model.includes(key)) model.splice(model.indexOf(key), 1);
          } else {
            expect(lru.shift()).toBe(model.shift());
          }
          expect([...lru.values()]).toEqual(model);
          expect(lru.size).toBe(model.length);
        }
      }),
    );
  });
});
