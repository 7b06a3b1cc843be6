/**
 * Issue 14 point 2: a submission's payload shape is bounded and checked before anything is committed, and no
 * record the manager accepts (from a client or from a worker) can break a read path afterwards.
 */
import fc from 'fast-check';
import { WebSocket, WebSocketServer } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { dashboardPlugin } from '../../../src/manager/dashboard/index.js';
import { PROTOCOL_VERSION } from '../../../src/protocol/messages.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';

const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

async function post(url: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** Every read path over HTTP, plus the first frames of both event streams; each must answer 200 / open. */
async function readEverything(m: TestManager, ids: string[]): Promise<void> {
  const routes = [
    '/api/tasks?limit=10000',
    '/api/tasks?state=succeeded,failed,queued,running,assigned&limit=10000',
    '/api/status',
    '/api/workers',
    '/api/alerts',
    '/api/scaling',
    '/health',
    '/metrics',
    '/dashboard/api/tasks',
    '/dashboard/api/tasks?limit=500',
    ...ids.flatMap((id) => [
      `/api/tasks/${encodeURIComponent(id)}`,
      `/api/tasks/${encodeURIComponent(id)}/wait?timeoutMs=0`,
      `/dashboard/api/tasks/${encodeURIComponent(id)}`,
    ]),
  ];
  for (const route of routes) {
    const res = await fetch(`${m.url}${route}`);
    const text = await res.text();
    expect({ route, status: res.status, text: res.status === 200 ? '' : text }).toEqual({
      route,
      status: 200,
      text: '',
    });
  }
  for (const path of ['/api/events', '/dashboard/live']) {
    const ws = new WebSocket(`${m.url.replace('http', 'ws')}${path}`);
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d: Buffer) => resolve(d.toString()));
      ws.once('error', reject);
      ws.once('close', (code) => reject(new Error(`${path} closed ${code}`)));
    });
    expect(() => JSON.parse(first) as unknown).not.toThrow();
    ws.terminate();
  }
}

describe('bounded submissions (issue 14 point 2)', () => {
  let m: TestManager | undefined;
  const procs: WorkerProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    for (const c of cleanups.splice(0)) await c();
    await m?.stop();
    m = undefined;
  });

  /** A manager with the dashboard's routes too, so its read paths are exercised as well. */
  async function manager(limits: Record<string, unknown> = {}): Promise<TestManager> {
    return startManager(
      { submission: limits },
      { api: (manager) => ({ plugins: [dashboardPlugin(manager)] }) },
    );
  }

  it('a 10 000-deep payload is refused with 400 invalid_task naming max_depth, and nothing is committed', async () => {
    m = await manager();
    const r = await post(m.url, `{"capability":"echo","payload":${deep(10_000)}}`);
    expect(r.status).toBe(400);
    const error = r.json.error as { code: string; retryable: boolean; message: string; details: unknown };
    expect(error.code).toBe('invalid_task');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/max_depth/);
    expect(error.details).toMatchObject({ limit: 'max_depth', bound: 64 });
    expect(await m.manager.listTasks({ limit: 10_000 })).toHaveLength(0);
    await readEverything(m, []);
  });

  it('every limit is configurable and named when broken', async () => {
    m = await manager({ max_bytes: 500, max_depth: 3, max_keys: 20, max_string_length: 50 });
    const cases: [unknown, string][] = [
      [[[[[1]]]], 'max_depth'],
      [Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, i])), 'max_keys'],
      [{ s: 'x'.repeat(51) }, 'max_string_length'],
      [{ ['k'.repeat(51)]: 1 }, 'max_string_length'],
      [Array.from({ length: 19 }, () => 'y'.repeat(49)), 'max_bytes'],
    ];
    for (const [payload, limit] of cases) {
      const r = await post(m.url, JSON.stringify({ capability: 'echo', payload }));
      expect({ limit, status: r.status }).toEqual({ limit, status: 400 });
      expect((r.json.error as { details: { limit: string } }).details.limit).toBe(limit);
    }
    const ok = await post(m.url, JSON.stringify({ capability: 'echo', payload: [[['fits']]] }));
    expect(ok.status).toBe(201);
    expect(await m.manager.listTasks({ limit: 100 })).toHaveLength(1);
  });

  it('fuzz: every payload the manager accepts is dispatched, and every read route survives it', async () => {
    m = await manager({ max_depth: 20, max_keys: 2000 });
    const w = await spawnWorker('echo');
    procs.push(w);
    await m.manager.registerWorker({ endpoint: w.endpoint });
    const accepted: string[] = [];
    let refused = 0;
    const payload = fc.oneof(
      fc.jsonValue({ maxDepth: 30 }),
      fc.integer({ min: 1, max: 200 }).map((n) => JSON.parse(deep(n)) as unknown),
      fc
        .record({ k: fc.string({ unit: 'binary', maxLength: 40 }), n: fc.integer({ min: 1, max: 13 }) })
        .map(({ k, n }) => {
          let v: unknown = k;
          for (let i = 0; i < n; i++) v = { [k]: v, __proto__x: [v] };
          return v;
        }),
    );
    await fc.assert(
      fc.asyncProperty(payload, async (p) => {
        const r = await post(m!.url, JSON.stringify({ capability: 'echo', payload: p }));
        if (r.status === 201) accepted.push((r.json.task as { id: string }).id);
        else {
          expect(r.status).toBe(400);
          // invalid_payload: echo takes an object, and the manager checks that at submit (issue 18).
          expect(['invalid_task', 'invalid_payload']).toContain((r.json.error as { code: string }).code);
          refused += 1;
        }
      }),
      { numRuns: 120, seed: 14 },
    );
    expect(accepted.length).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(5);
    // Nothing refused was committed.
    expect(await m.manager.listTasks({ limit: 10_000 })).toHaveLength(accepted.length);
    await waitFor(
      async () =>
        (await m!.manager.listTasks({ state: ['succeeded', 'failed'], limit: 10_000 })).length ===
        accepted.length,
      60_000,
      'every accepted task reached a final state',
    );
    await readEverything(m, accepted);
  }, 180_000);

  it("a worker's output too deep to serialize fails the task (invalid_message) instead of breaking reads", async () => {
    m = await manager();
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close(() => r());
        }),
    );
    wss.on('connection', (ws) => {
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocolVersion: PROTOCOL_VERSION,
          workerId: 'deep-output',
          workerType: 'echo',
          capabilities: ['echo'],
          maxConcurrency: 1,
          version: 'test',
        }),
      );
      ws.on('message', (raw: Buffer) => {
        const msg = JSON.parse(raw.toString()) as {
          type: string;
          taskId: string;
          attempt: number;
          leaseToken: string;
        };
        if (msg.type !== 'task.assign') return;
        const lease = `"taskId":${JSON.stringify(msg.taskId)},"attempt":${msg.attempt},"leaseToken":${JSON.stringify(msg.leaseToken)}`;
        ws.send(`{"type":"task.progress",${lease},"partial":${deep(10_000)}}`);
        ws.send(`{"type":"task.result",${lease},"durationMs":1,"output":${deep(10_000)}}`);
      });
    });
    const port = (wss.address() as { port: number }).port;
    await m.manager.registerWorker({ endpoint: `ws://127.0.0.1:${port}/ws` });
    const task = await m.client.submit('echo', { v: 1 }, { maxAttempts: 1 });
    const done = await m.client.wait(task.id, 20_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('invalid_message');
    await readEverything(m, [task.id]);
  });
});
