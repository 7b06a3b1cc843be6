import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IndexedHeap } from '../../../../src/manager/queue/indexed-heap.js';

interface Item {
  key: number;
  seq: number;
  heapIndex: number;
}
const before = (a: Item, b: Item): boolean => (a.key !== b.key ? a.key < b.key : a.seq < b.seq);

describe('IndexedHeap', () => {
  it('pops in order after arbitrary pushes and removals from the middle', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -20, max: 20 }), { maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        (keys, removals) => {
          const heap = new IndexedHeap<Item>(before);
          const items = keys.map((key, seq) => ({ key, seq, heapIndex: -1 }));
          for (const item of items) heap.push(item);
          const removed = new Set<Item>();
          for (const r of removals) {
            const victim = items[r % Math.max(1, items.length)];
            if (!victim) continue;
            expect(heap.remove(victim)).toBe(!removed.has(victim));
            removed.add(victim);
          }
          const expected = items.filter((i) => !removed.has(i)).sort((a, b) => (before(a, b) ? -1 : 1));
          expect(heap.size).toBe(expected.length);
          const out: Item[] = [];
          for (let i = heap.pop(); i; i = heap.pop()) out.push(i);
          expect(out).toEqual(expected);
          expect(out.every((i) => i.heapIndex === -1)).toBe(true);
        },
      ),
    );
  });

  it('does not remove an item that belongs to another heap', () => {
    const a = new IndexedHeap<Item>(before);
    const b = new IndexedHeap<Item>(before);
    const x = { key: 1, seq: 0, heapIndex: -1 };
    const y = { key: 2, seq: 1, heapIndex: -1 };
    a.push(x);
    b.push(y);
    expect(a.remove(y)).toBe(false);
    expect(a.size).toBe(1);
    expect(b.peek()).toBe(y);
  });
});
