/**
 * An LRU bounded by entry count and by an estimate of bytes, with optional per-entry expiry. Map insertion
 * order is the recency order: a hit re-inserts the key.
 */
export class LruCache<V> {
  private readonly map = new Map<string, { value: V; size: number; expires: number }>();
  private bytes = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.delete(key);
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  set(key: string, value: V, size: number, ttlMs = Number.POSITIVE_INFINITY): void {
    if (this.maxEntries === 0 || size > this.maxBytes) return;
    this.delete(key);
    this.map.set(key, { value, size, expires: this.now() + ttlMs });
    this.bytes += size;
    while (this.map.size > this.maxEntries || this.bytes > this.maxBytes) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.bytes -= e.size;
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.map.size;
  }

  get byteSize(): number {
    return this.bytes;
  }
}
