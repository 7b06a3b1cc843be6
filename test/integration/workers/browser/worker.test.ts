/**
 * The browser kind behind the real worker runtime (WebSocket, slots, /health) via the fake manager, and the
 * worker process SIGKILLed with browsers running: they must die with it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBrowserKind, type BrowserKind } from '../../../../src/workers/browser/index.js';
import { processesMatching } from '../../../../src/workers/browser/process-tree.js';
import { browserSection, HEADLESS_SHELL } from '../../../fixtures/browser/kind.js';
import { startTestServer, type TestServer } from '../../../fixtures/browser/test-server.js';
import { connectFakeManager, startWorker, type StartedWorker } from '../../../helpers/fake-manager.js';

let server: TestServer;
let worker: StartedWorker;
let kind: BrowserKind;

beforeAll(async () => {
  server = await startTestServer();
  kind = createBrowserKind(browserSection([server.port]));
  worker = await startWorker(kind, {
    timeout: '120s',
    max_concurrent_tasks: 4,
    capabilities: [...kind.handlers.map((h) => h.capability)],
  });
});

afterAll(async () => {
  await worker?.stop();
  await server?.close();
});

describe('browser worker through the runtime', () => {
  it('answers a screenshot over the WebSocket with the PNG as an artifact', async () => {
    const fm = await connectFakeManager(worker.endpoint);
    expect(fm.hello.capabilities).toEqual(
      expect.arrayContaining([
        'screenshot',
        'scraping',
        'pdf-generation',
        'web-automation',
        'testing',
        'form-filling',
      ]),
    );
    const answer = await fm.assign(
      'screenshot',
      { url: `${server.origin}/table.html` },
      { timeoutMs: 20_000 },
    );
    expect(answer.type).toBe('task.result');
    if (answer.type !== 'task.result') return;
    const art = answer.artifacts?.[0] as { name: string; contentType: string; data?: string } | undefined;
    expect(art?.contentType).toBe('image/png');
    expect(answer.output).toMatchObject({ status: 200, title: 'Fleet inventory' });
    expect(fm.violations).toEqual([]);
    await fm.close();
  });

  it('reports invalid payloads and policy refusals as typed errors, and runs 4 tasks at once', async () => {
    const fm = await connectFakeManager(worker.endpoint);
    const bad = await fm.assign('scraping', { url: 42 }, { timeoutMs: 10_000 });
    expect(bad.type === 'task.error' && bad.error.code).toBe('invalid_payload');
    const refused = await fm.assign('screenshot', { url: 'file:///etc/passwd' }, { timeoutMs: 10_000 });
    expect(refused.type === 'task.error' && refused.error.code).toBe('url_blocked');
    const four = await Promise.all(
      [0, 1, 2, 3].map(() =>
        fm.assign('scraping', { url: `${server.origin}/table.html` }, { timeoutMs: 30_000 }),
      ),
    );
    expect(four.map((a) => a.type)).toEqual(['task.result', 'task.result', 'task.result', 'task.result']);
    await fm.close();
  });

  it('shows the pool in /health', async () => {
    const health = (await (await fetch(`${worker.baseUrl}/health`)).json()) as Record<string, unknown>;
    expect(JSON.stringify(health)).toContain('chrome-');
  });
});

describe('worker process killed with SIGKILL', () => {
  it('takes its browsers with it', async () => {
    const child = join(import.meta.dirname, '../../../fixtures/browser/worker-child.mjs');
    if (!existsSync(join(import.meta.dirname, '../../../../dist/workers/browser/index.js'))) {
      throw new Error(
        'dist/ is missing: run `npx tsc -p tsconfig.build.json` (npm run test:integration builds first)',
      );
    }
    const temp = mkdtempSync(join(tmpdir(), 'fleet-browser-kill-'));
    const proc = spawn(
      process.execPath,
      [child, temp, process.env.BROWSER_EXECUTABLE_PATH ?? HEADLESS_SHELL],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      proc.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
      });
      proc.once('exit', (code) => reject(new Error(`worker child exited early (${code})`)));
    });
    const { root, pids } = JSON.parse(line) as { root: string; pids: number[] };
    expect(pids).toHaveLength(2);
    const before = await processesMatching(root);
    expect(before.length).toBeGreaterThanOrEqual(2);
    // The holder of the browsers' network namespace goes too.
    const cmdlines = before.map((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    });
    expect(cmdlines.some((c) => c.includes("'link', 'set', 'lo'"))).toBe(true);
    proc.kill('SIGKILL');
    const until = Date.now() + 5000;
    let left = await processesMatching(root);
    while (left.length > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      left = await processesMatching(root);
    }
    expect(left).toEqual([]);
  });
});
