import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../../src/protocol/errors.js';
import {
  normalizeNodeId,
  parseFigmaRef,
  resolveTarget,
} from '../../../../src/workers/figma-mcp/client/figma-ref.js';
import { LruCache } from '../../../../src/workers/figma-mcp/client/lru-cache.js';
import { parseRetryAfter } from '../../../../src/workers/figma-mcp/client/figma-client.js';
import { CallLimiter } from '../../../../src/workers/figma-mcp/core/call-limiter.js';
import { contrastRatio } from '../../../../src/workers/figma-mcp/design/css-values.js';
import { parseFigmaOptions } from '../../../../src/workers/figma-mcp/options.js';

describe('figma refs', () => {
  it('accepts /file/ and /design/ URLs, branch URLs, keys, and both id spellings', () => {
    expect(parseFigmaRef('https://www.figma.com/design/AbCdEf123456/Name?node-id=1-2&t=x')).toEqual({
      fileKey: 'AbCdEf123456',
      nodeId: '1:2',
    });
    expect(parseFigmaRef('https://figma.com/file/AbCdEf123456/Name?node-id=12%3A34')).toEqual({
      fileKey: 'AbCdEf123456',
      nodeId: '12:34',
    });
    expect(parseFigmaRef('https://www.figma.com/design/AbCdEf123456/branch/BrAnCh987654/Name').fileKey).toBe(
      'BrAnCh987654',
    );
    expect(parseFigmaRef('AbCdEf123456')).toEqual({ fileKey: 'AbCdEf123456', nodeId: undefined });
    expect(normalizeNodeId('I5-3;1-4')).toBe('I5:3;1:4');
    expect(resolveTarget('https://www.figma.com/design/AbCdEf123456/x?node-id=1-2', ['3-4']).nodeIds).toEqual(
      ['3:4'],
    );
  });

  it('refuses other hosts, schemes and junk with invalid_payload', () => {
    for (const bad of [
      'http://www.figma.com/design/AbCdEf123456/x',
      'https://figma.com.evil.io/design/AbCdEf123456',
      'javascript:alert(1)',
      '../../etc',
      'abc',
    ]) {
      expect(() => parseFigmaRef(bad)).toThrow(FleetError);
    }
    expect(() => normalizeNodeId('1:2:3')).toThrow(/not a Figma node id/);
  });
});

describe('CallLimiter', () => {
  it('runs at most max at once, hands slots over in order, drops cancelled waiters and refuses past the queue bound', async () => {
    const l = new CallLimiter(2, 2);
    const ctl = () => new AbortController();
    const a = await l.acquire(ctl().signal);
    const b = await l.acquire(ctl().signal);
    const cancelled = ctl();
    const c = l.acquire(cancelled.signal);
    const d = l.acquire(ctl().signal);
    await expect(l.acquire(ctl().signal)).rejects.toMatchObject({ code: 'busy' });
    cancelled.abort();
    await expect(c).rejects.toMatchObject({ code: 'cancelled' });
    a();
    const releaseD = await d;
    expect(l.active).toBe(2);
    b();
    releaseD();
    expect(l.active).toBe(0);
  });
});

describe('LruCache', () => {
  it('evicts the least recently used by count and bytes, and expires entries', () => {
    let now = 0;
    const c = new LruCache<string>(2, 100, () => now);
    c.set('a', 'A', 10);
    c.set('b', 'B', 10);
    c.get('a');
    c.set('c', 'C', 10);
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe('A');
    c.set('big', 'X', 95);
    expect(c.byteSize).toBeLessThanOrEqual(100);
    c.set('t', 'T', 1, 50);
    now = 60;
    expect(c.get('t')).toBeUndefined();
  });
});

describe('small pure parts', () => {
  it('parses Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('3', 0)).toBe(3);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 0)).toBe(10);
    expect(parseRetryAfter(null, 0)).toBeUndefined();
  });

  it('computes WCAG contrast', () => {
    expect(contrastRatio({ r: 0, g: 0, b: 0 }, { r: 1, g: 1, b: 1 })).toBeCloseTo(21, 5);
  });

  it('validates figma_config with field-named config_invalid errors and duration defaults in ms', () => {
    const o = parseFigmaOptions({ name: 'figma-mcp', figma_config: {} });
    expect(o.base_url).toBe('https://api.figma.com');
    expect(o.request_timeout).toBe(60_000);
    expect(o.cache.version_ttl).toBe(10_000);
    expect(() =>
      parseFigmaOptions({
        name: 'figma-mcp',
        figma_config: { base_url: 'ftp://x', rate_limits: { tier1: { per_minute: -1 } } },
      }),
    ).toThrow(/figma_mcp\.figma_config\.base_url.*figma_mcp\.figma_config\.rate_limits\.tier1\.per_minute/);
  });
});
