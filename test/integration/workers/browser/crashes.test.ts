/**
 * Who is to blame when a page stops (issue 13, points 6, 7 and 9), on real Chromium: a task whose own renderer
 * dies or whose own page hangs fails at once with `page_crashed` / `page_unresponsive`, not retryable unless the
 * caller opted in; a neighbour on another instance finishes; `data:`/`blob:` subframes are fine while a top-level
 * `blob:` document is still refused.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetError } from '../../../../src/protocol/errors.js';
import type { BrowserKind } from '../../../../src/workers/browser/index.js';
import { groupMembers } from '../../../../src/workers/browser/process-tree.js';
import { failure } from '../../../helpers/failure.js';
import { runTask, startKind } from '../../../fixtures/browser/kind.js';
import { startTestServer, type TestServer } from '../../../fixtures/browser/test-server.js';

let server: TestServer;
let kind: BrowserKind;

beforeAll(async () => {
  server = await startTestServer();
  kind = await startKind([server.port], { pool_size: 2, unresponsive_timeout: '3s' });
});
afterAll(async () => {
  await kind?.stop?.();
  await server?.close();
});

async function waitUntil(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Renderer processes of one browser's group. */
async function renderers(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await groupMembers(pgid)) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('--type=renderer')) out.push(pid);
  }
  return out;
}

/** Starts a waiting task, kills the renderers of the instance it landed on, returns its error. */
async function crashOwnRenderer(retryPageFailures?: boolean): Promise<FleetError> {
  const busy = () => kind.pool!.list().find((i) => i.activeTasks > 0);
  await waitUntil(() => busy() === undefined, 10_000);
  const task = failure(
    runTask(
      kind,
      'scraping',
      {
        html: '<title>victim</title><p>waiting</p>',
        options: { delayMs: 15_000, ...(retryPageFailures ? { retryPageFailures } : {}) },
      },
      30_000,
    ),
  );
  await waitUntil(() => busy() !== undefined, 10_000);
  const inst = busy()!;
  // The neighbour on the other instance must not notice.
  const neighbour = runTask(kind, 'scraping', {
    url: `${server.origin}/wait.html`,
    options: { delayMs: 1500 },
  });
  await new Promise((r) => setTimeout(r, 700));
  for (const pid of await renderers(inst.process.pgid)) process.kill(pid, 'SIGKILL');
  const err = await task;
  expect((await neighbour).output).toMatchObject({ status: 200 });
  return err;
}

describe('crash classification', () => {
  it('fails a task whose own renderer died with page_crashed, not retryable; a neighbour finishes', async () => {
    const started = Date.now();
    const err = await crashOwnRenderer();
    expect(err.code).toBe('page_crashed');
    expect(err.retryable).toBe(false);
    expect(Date.now() - started).toBeLessThan(10_000);
    // The browser itself lives on and serves the next task.
    expect(kind.pool!.stats.crashes).toBe(0);
    const next = await runTask(kind, 'scraping', { url: `${server.origin}/table.html` });
    expect(next.output).toMatchObject({ status: 200 });
  });

  it('makes page_crashed retryable when the caller opts in', async () => {
    const err = await crashOwnRenderer(true);
    expect(err.code).toBe('page_crashed');
    expect(err.retryable).toBe(true);
  });

  it('fails an endless loop with page_unresponsive before the deadline, not a retryable timeout', async () => {
    const started = Date.now();
    const err = await failure(runTask(kind, 'screenshot', { url: `${server.origin}/hung.html` }, 20_000));
    expect(err.code).toBe('page_unresponsive');
    expect(err.retryable).toBe(false);
    // unresponsive_timeout is 3 s: well before the 20 s deadline.
    expect(Date.now() - started).toBeLessThan(12_000);
    const optIn = await failure(
      runTask(
        kind,
        'screenshot',
        { url: `${server.origin}/hung.html`, options: { retryPageFailures: true } },
        4000,
      ),
    );
    expect(optIn.code).toBe('page_unresponsive');
    expect(optIn.retryable).toBe(true);
  });

  it('keeps a slow but answering page a retryable timeout', async () => {
    const err = await failure(
      runTask(kind, 'scraping', { url: `${server.origin}/wait.html`, options: { delayMs: 10_000 } }, 2500),
    );
    expect(err.code).toBe('timeout');
    expect(err.retryable).toBe(true);
  });
});

describe('data: and blob: frames', () => {
  it('allows data: and blob: subframes', async () => {
    const r = await runTask(kind, 'scraping', {
      html: `<title>frames</title>
        <iframe id="d" src="data:text/html,<p>from data</p>"></iframe>
        <iframe id="b"></iframe>
        <script>
          document.getElementById('b').src = URL.createObjectURL(new Blob(['<p>from blob</p>'], { type: 'text/html' }));
        </script>`,
      options: { delayMs: 500 },
    });
    expect(r.output).toMatchObject({ title: 'frames' });
  });

  it('still refuses a top-level blob: document', async () => {
    const err = await failure(
      runTask(kind, 'scraping', {
        html: `<script>location.href = URL.createObjectURL(new Blob(['<p>top</p>'], { type: 'text/html' }));</script>`,
        options: { delayMs: 1500 },
      }),
    );
    expect(err.code).toBe('url_blocked');
  });
});
