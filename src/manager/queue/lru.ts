/**
 * A least-recently-used index: a Map for lookups plus a linked list for recency. Not the Map-only trick
 * (delete + re-set, evict `keys().next()`): V8 leaves deleted slots in a Map's table until it rehashes, so
 * finding the oldest key walks over every hole and eviction turns O(n) under steady churn.
 */
interface Node<V> {
  key: string;
  value: V;
  prev: Node<V> | undefined;
  next: Node<V> | undefined;
}

export class Lru<V> {
  private readonly map = new Map<string, Node<V>>();
  /** Least recently used. */
  private head: Node<V> | undefined;
  private tail: Node<V> | undefined;

  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Reads and marks as most recently used. */
  get(key: string): V | undefined {
    const node = this.map.get(key);
    if (!node) return undefined;
    this.unlink(node);
    this.append(node);
    return node.value;
  }

  /** Reads without changing recency. */
  peek(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: string, value: V): void {
    const existing = this.map.get(key);
    if (existing) {
      existing.value = value;
      this.unlink(existing);
      this.append(existing);
      return;
    }
    const node: Node<V> = { key, value, prev: undefined, next: undefined };
    this.map.set(key, node);
    this.append(node);
  }

  delete(key: string): V | undefined {
    const node = this.map.get(key);
    if (!node) return undefined;
    this.map.delete(key);
    this.unlink(node);
    return node.value;
  }

  /** Removes and returns the least recently used value. */
  shift(): V | undefined {
    const node = this.head;
    if (!node) return undefined;
    this.map.delete(node.key);
    this.unlink(node);
    return node.value;
  }

  /** Least recently used first. */
  *values(): IterableIterator<V> {
    for (let node = this.head; node; node = node.next) yield node.value;
  }

  private append(node: Node<V>): void {
    node.prev = this.tail;
    node.next = undefined;
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
  }

  private unlink(node: Node<V>): void {
    if (node.prev) node.prev.next = node.next;
    else if (this.head === node) this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else if (this.tail === node) this.tail = node.prev;
    node.prev = undefined;
    node.next = undefined;
  }
}
