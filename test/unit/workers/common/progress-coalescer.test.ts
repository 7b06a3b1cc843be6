import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProgressCoalescer } from '../../../../src/workers/common/progress-coalescer.js';
import type { ProgressUpdate } from '../../../../src/workers/common/worker-kind.js';

describe('ProgressCoalescer', () => {
  let frames: ProgressUpdate[];
  beforeEach(() => {
    vi.useFakeTimers();
    frames = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('batches a flood of log lines into one frame per stream per flush window', () => {
    const c = new ProgressCoalescer((u) => frames.push(u), { flushMs: 50 });
    for (let i = 0; i < 1000; i++) c.push({ log: { stream: i % 2 ? 'stderr' : 'stdout', data: `${i}\n` } });
    expect(frames).toHaveLength(0);
    vi.advanceTimersByTime(50);
    expect(frames).toHaveLength(2);
    expect(frames[0]!.log!.stream).toBe('stdout');
    expect(frames[0]!.log!.data.split('\n')).toHaveLength(501);
    expect(frames[1]!.log!.data.startsWith('1\n3\n5\n')).toBe(true);
  });

  it('keeps only the latest percent, message and partial, attached to the first frame', () => {
    const c = new ProgressCoalescer((u) => frames.push(u), { flushMs: 50 });
    c.push({ percent: 10, message: 'a' });
    c.push({ percent: 20, partial: { rows: 1 } });
    c.push({ percent: 30, message: 'b', log: { stream: 'log', data: 'x' } });
    vi.advanceTimersByTime(60);
    expect(frames).toEqual([
      { percent: 30, message: 'b', partial: { rows: 1 }, log: { stream: 'log', data: 'x' } },
    ]);
  });

  it('clamps percent to 0..100 and ignores non-finite numbers and junk updates', () => {
    const c = new ProgressCoalescer((u) => frames.push(u));
    c.push({ percent: 250 });
    c.flush();
    c.push({ percent: Number.NaN });
    c.push(null as unknown as ProgressUpdate);
    c.push({ percent: -3 });
    c.flush();
    expect(frames).toEqual([{ percent: 100 }, { percent: 0 }]);
  });

  it('flushes early when the pending log grows past maxChunkBytes', () => {
    const c = new ProgressCoalescer((u) => frames.push(u), { flushMs: 1_000, maxChunkBytes: 100 });
    c.push({ log: { stream: 'stdout', data: 'a'.repeat(60) } });
    expect(frames).toHaveLength(0);
    c.push({ log: { stream: 'stdout', data: 'b'.repeat(60) } });
    expect(frames).toHaveLength(1);
    expect(frames[0]!.log!.data).toHaveLength(120);
  });

  it('caps total bytes with one truncation marker, keeping the output up to the cut', () => {
    const c = new ProgressCoalescer((u) => frames.push(u), { maxBytes: 100 });
    c.push({ log: { stream: 'stdout', data: 'a'.repeat(80) } });
    c.push({ log: { stream: 'stdout', data: 'b'.repeat(80) } });
    c.push({ log: { stream: 'stdout', data: 'c'.repeat(80) } });
    c.push({ message: 'dropped after the cap' });
    c.push({ percent: 55 });
    c.close();
    const text = frames.map((f) => f.log?.data ?? '').join('');
    expect(text.startsWith(`${'a'.repeat(80)}${'b'.repeat(20)}`)).toBe(true);
    expect(text).not.toContain('cc');
    expect(text.match(/truncated at 100 bytes/g)).toHaveLength(1);
    expect(frames.some((f) => f.message === 'dropped after the cap')).toBe(false);
    expect(frames.some((f) => f.percent === 55)).toBe(true);
    expect(c.truncated).toBe(true);
    expect(c.bytesUsed).toBe(100);
  });

  it('close() flushes what is pending and drops everything after', () => {
    const c = new ProgressCoalescer((u) => frames.push(u), { flushMs: 50 });
    c.push({ log: { stream: 'stderr', data: 'last words' } });
    c.close();
    c.push({ log: { stream: 'stderr', data: 'too late' } });
    vi.advanceTimersByTime(100);
    expect(frames).toEqual([{ log: { stream: 'stderr', data: 'last words' } }]);
  });

  it('drops a partial output that cannot be serialized instead of throwing', () => {
    const c = new ProgressCoalescer((u) => frames.push(u));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => c.push({ partial: cyclic, percent: 1 })).not.toThrow();
    c.flush();
    expect(frames).toEqual([{ percent: 1 }]);
  });
});
