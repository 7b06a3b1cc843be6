/**
 * Issue 16: batch submit (POST /api/tasks:batch, FleetClient.submitMany) for fan-out. The batch is
 * validated whole before anything is stored: one bad entry refuses every one, naming its index.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FleetClient } from '../../../src/client/fleet-client.js';
import { parseConfig } from '../../../src/config/load.js';
import { MAX_BATCH } from '../../../src/manager/manager.js';
import { WorkerServer } from '../../../src/workers/common/server.js';
import { createEchoKind } from '../../../src/workers/echo/index.js';
import { startManager, type TestManager } from '../../helpers/manager.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fleet(overrides: Record<string, unknown> = {}, withWorker = true): Promise<TestManager> {
  const m = await startManager(overrides, { api: { readToken: 'read-secret' } });
  cleanups.push(() => m.stop());
  if (withWorker) {
    const section = parseConfig({ echo: { port: 0, max_concurrent_tasks: 16 } }).echo;
    const worker = new WorkerServer({
      kind: createEchoKind(section),
      config: section,
      logger: pino({ level: 'silent' }),
      ...(typeof overrides.token === 'string' ? { token: overrides.token } : {}),
    });
    await worker.start();
    cleanups.push(() => worker.stop());
    await m.manager.registerWorker({ endpoint: worker.endpoint });
  }
  return m;
}

async function postBatch(m: TestManager, body: unknown, token?: string) {
  const res = await fetch(`${m.url}/api/tasks:batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    json: (await res.json()) as {
      tasks: { task: { id: string }; created: boolean }[];
      error?: Record<string, unknown>;
    },
  };
}

describe('batch submit', () => {
  it('stores and runs every task of a batch, in order, and answers each with its task', async () => {
    const m = await fleet();
    const r = await postBatch(m, {
      tasks: Array.from({ length: 50 }, (_, i) => ({ capability: 'echo', payload: { i } })),
    });
    expect(r.status).toBe(201);
    expect(r.json.tasks).toHaveLength(50);
    const finals = await Promise.all(r.json.tasks.map((t) => m.client.wait(t.task.id, 10_000)));
    expect(finals.map((t) => (t.output as { i: number }).i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // An id already known is found, not doubled (created: false), as on POST /api/tasks.
    const again = await postBatch(m, { tasks: [{ id: finals[0]!.id, capability: 'echo', payload: {} }] });
    expect(again.status).toBe(200);
    expect(again.json.tasks[0]).toMatchObject({ created: false, task: { id: finals[0]!.id } });
  });

  it('one bad entry refuses the whole batch, naming its index; nothing is stored', async () => {
    const m = await fleet();
    const cases: [unknown, string, number | undefined][] = [
      [{ capability: 'echo', payload: {}, priority: 'high' }, 'invalid_task', 2],
      [{ capability: 'no-such-thing', payload: {} }, 'unknown_capability', 2],
      [
        { capability: 'echo', payload: JSON.parse(`${'['.repeat(100)}${']'.repeat(100)}`) },
        'invalid_task',
        2,
      ],
      ['not an object', 'invalid_task', 2],
    ];
    for (const [bad, code, index] of cases) {
      const r = await postBatch(m, {
        tasks: [{ capability: 'echo', payload: { a: 1 } }, { capability: 'echo', payload: { b: 2 } }, bad],
      });
      expect(r.status).toBe(400);
      expect(r.json.error).toMatchObject({ code, details: { index } });
    }
    for (const body of [{}, { tasks: [] }, { tasks: 'x' }, []]) {
      expect((await postBatch(m, body)).json.error).toMatchObject({ code: 'invalid_task' });
    }
    const tooMany = await postBatch(m, {
      tasks: Array.from({ length: MAX_BATCH + 1 }, () => ({ capability: 'echo', payload: {} })),
    });
    expect(tooMany.json.error).toMatchObject({ code: 'invalid_task', details: { limit: MAX_BATCH } });
    expect(await m.manager.listTasks({ limit: 10_000 })).toEqual([]);
  });

  it('a batch larger than the room left in the queue is refused whole with queue_full', async () => {
    const m = await fleet({ queue: { max_size: 10 } }, false);
    const ok = await postBatch(m, { tasks: Array.from({ length: 6 }, () => ({ capability: 'echo' })) });
    expect(ok.status, JSON.stringify(ok.json)).toBe(201);
    const full = await postBatch(m, { tasks: Array.from({ length: 5 }, () => ({ capability: 'echo' })) });
    expect(full.status).toBe(429);
    expect(full.json.error).toMatchObject({ code: 'queue_full', retryable: true });
    expect(await m.manager.queueDepth()).toBe(6);
  });

  it('needs the operator token; the read-only one is refused', async () => {
    const m = await fleet({ token: 'op-secret' });
    const task = { capability: 'echo', payload: {} };
    expect((await postBatch(m, { tasks: [task] })).status).toBe(401);
    expect((await postBatch(m, { tasks: [task] }, 'read-secret')).json.error).toMatchObject({
      code: 'unauthorized',
    });
    expect((await postBatch(m, { tasks: [task] }, 'op-secret')).status).toBe(201);
  });

  it('FleetClient.submitMany over HTTP and over the WebSocket channel', async () => {
    const m = await fleet();
    for (const channel of ['http', 'websocket'] as const) {
      const c = new FleetClient({ url: m.url, channel });
      cleanups.push(() => c.close());
      const out = await c.submitMany([
        { capability: 'echo', payload: { n: 1 }, priority: 5 },
        { capability: 'echo', payload: { n: 2 } },
      ]);
      expect(out.map((o) => o.created)).toEqual([true, true]);
      expect(out[0]!.task.priority).toBe(5);
      const finals = await Promise.all(out.map((o) => c.wait(o.task.id, 10_000)));
      expect(finals.map((t) => t.output)).toEqual([{ n: 1 }, { n: 2 }]);
      await expect(c.submitMany([{ capability: 'echo' }, { capability: '' }])).rejects.toMatchObject({
        code: 'invalid_task',
        details: { index: 1 },
      });
    }
  });
});
