/**
 * The memory limit held by the kernel (issue 13, point 4), on real Chromium: each browser runs in its own memory
 * cgroup, so a memory-bomb page is OOM-killed at the limit — its renderer alone — while a neighbour task on the
 * same browser completes, and the browser lives on. Needs a writable memory cgroup (root; v1 or v2).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserKind } from '../../../../src/workers/browser/index.js';
import { probeMemoryCgroup } from '../../../../src/workers/common/memory-cgroup.js';
import { failure } from '../../../helpers/failure.js';
import { runTask, startKind } from '../../../fixtures/browser/kind.js';
import { startTestServer, type TestServer } from '../../../fixtures/browser/test-server.js';

const LIMIT_MB = 450;
/** Keeps touching fresh 16 MB buffers until something stops it. */
const MEMORY_BOMB = `<title>bomb</title><script>
  const keep = [];
  (function grow() {
    for (let i = 0; i < 4; i++) { const b = new Uint8Array(16 * 1024 * 1024); b.fill(7); keep.push(b); }
    setTimeout(grow, 5);
  })();
</script>`;

let server: TestServer;
let kind: BrowserKind;

beforeAll(async () => {
  if (!probeMemoryCgroup())
    throw new Error('no writable memory cgroup (v1 or v2): run as root on a cgroup host');
  server = await startTestServer();
  kind = await startKind([server.port], { pool_size: 1, memory_limit_mb: LIMIT_MB });
});
afterAll(async () => {
  await kind?.stop?.();
  await server?.close();
});

describe('memory cgroup per browser', () => {
  it('puts every process of the browser in a group with the limit', async () => {
    const snap = kind.pool!.snapshot();
    expect(snap.memoryLimit).toMatch(/^cgroup-v[12]$/);
    const root = probeMemoryCgroup()!;
    const pid = kind.pool!.pids()[0]!;
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => (root.version === 'v1' ? /^\d+:[^:]*\bmemory\b[^:]*:/.test(l) : l.startsWith('0::')));
    const group = line!.slice(line!.indexOf(':', line!.indexOf(':') + 1) + 1);
    expect(group).toContain('fleet-browser-');
    const file = root.version === 'v1' ? 'memory.limit_in_bytes' : 'memory.max';
    const dir = join(root.dir, group.slice(group.lastIndexOf('/') + 1));
    expect(Number(readFileSync(join(dir, file), 'utf8'))).toBe(LIMIT_MB * 1024 * 1024);
  });

  it('OOM-kills a memory bomb alone: page_crashed, while a neighbour on the same browser completes', async () => {
    const pid = kind.pool!.pids()[0]!;
    const neighbour = runTask(
      kind,
      'scraping',
      { url: `${server.origin}/table.html`, options: { delayMs: 4000 } },
      30_000,
    );
    const bomb = failure(
      runTask(kind, 'screenshot', { html: MEMORY_BOMB, options: { delayMs: 20_000 } }, 30_000),
    );
    const err = await bomb;
    expect(err.code).toBe('page_crashed');
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ oomKilled: true, limitMb: LIMIT_MB });
    expect((await neighbour).output).toMatchObject({ status: 200 });
    // The browser was not restarted: the renderer went, the instance stayed.
    expect(kind.pool!.pids()).toEqual([pid]);
    expect(kind.pool!.stats.crashes).toBe(0);
    const next = await runTask(kind, 'scraping', { url: `${server.origin}/table.html` });
    expect(next.output).toMatchObject({ status: 200 });
  });
});
