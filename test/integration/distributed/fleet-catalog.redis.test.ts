/* eslint-disable @typescript-eslint/no-explicit-any -- API bodies are JSON the test inspects field by field */
/**
 * The fleet-wide capability catalog (issue 18) in distributed mode: two managers on one Redis; a worker of a
 * type only it offers is connected to manager A. Manager B learns its capability descriptions from the
 * shared worker directory: it lists them (GET /api/capabilities), checks payloads submitted to it against
 * them, accepts the capability at all (no unknown_capability), and announces catalog changes as the remote
 * worker appears and goes.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describesKey } from '../../../src/manager/catalog/capability-catalog.js';
import type { ManagerEvent } from '../../../src/manager/manager.js';
import { RedisWorkerDirectory } from '../../../src/manager/registry/redis-worker-directory.js';
import { createManagerStores } from '../../../src/manager/store-factory.js';
import { describeHandler } from '../../../src/workers/common/describe.js';
import type { TaskHandler, WorkerKind } from '../../../src/workers/common/worker-kind.js';
import { startWorker, type StartedWorker } from '../../helpers/fake-manager.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { waitFor } from '../../helpers/processes.js';
import { countKeys, deleteKeys, getTestRedis, uniquePrefix, type TestRedis } from '../../helpers/redis.js';

const ShoutPayload = z.object({ text: z.string().max(20), times: z.number().int().min(1).max(3).default(1) });
const ShoutResult = z.object({ shouted: z.string() });

/** A worker type no manager's config knows: only the catalog can tell a manager about it. */
const shout: TaskHandler<z.infer<typeof ShoutPayload>, z.infer<typeof ShoutResult>> = {
  capability: 'shout',
  description: 'Upper-cases text, `times` times.',
  payloadSchema: ShoutPayload,
  resultSchema: ShoutResult,
  idempotent: true,
  readOnly: true,
  async run({ text, times }) {
    return { output: { shouted: Array.from({ length: times }, () => text.toUpperCase()).join(' ') } };
  },
};
const shoutKind = (): WorkerKind => ({ type: 'shouter', version: '1.0.0', handlers: [shout as TaskHandler] });

let redis: TestRedis;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  redis = await getTestRedis();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await redis.close();
});

function prefixFor(label: string): string {
  const prefix = uniquePrefix(label);
  cleanups.push(async () => {
    await deleteKeys(redis.url, prefix);
    expect(await countKeys(redis.url, prefix)).toBe(0);
  });
  return prefix;
}

async function redisManager(prefix: string, id: string): Promise<TestManager> {
  const overrides = { id, store: 'redis', redis: { url: redis.url, prefix } };
  const { parseConfig } = await import('../../../src/config/load.js');
  const stores = await createManagerStores(parseConfig({ manager: { ...overrides, log_level: 'silent' } }));
  const m = await startManager(overrides, { deps: stores.deps });
  cleanups.push(async () => {
    await m.stop();
    await stores.close();
  });
  return m;
}

async function apiCall(
  base: string,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; body: any }> {
  const r = await fetch(`${base}${path}`, {
    ...init,
    headers: { 'content-type': 'application/json', ...init?.headers },
  });
  return { status: r.status, body: await r.json() };
}

describe('the capability catalog is fleet-wide in distributed mode', () => {
  it("manager B lists, checks and accepts a capability only manager A's worker offers, and follows it as it comes and goes", async () => {
    const prefix = prefixFor('fleet-catalog');
    const a = await redisManager(prefix, 'manager-a');
    const b = await redisManager(prefix, 'manager-b');
    const eventsOnB: Extract<ManagerEvent, { type: 'catalog' }>[] = [];
    cleanups.push(
      b.manager.subscribe((e) => {
        if (e.type === 'catalog') eventsOnB.push(e);
      }),
    );

    // Before the worker exists, B does not know the capability at all.
    const before = await apiCall(b.url, '/api/tasks', {
      method: 'POST',
      body: JSON.stringify({ capability: 'shout', payload: { text: 'hi' } }),
    });
    expect(before.status).toBe(400);
    expect(before.body.error.code).toBe('unknown_capability');

    const worker: StartedWorker = await startWorker(shoutKind());
    let workerStopped = false;
    cleanups.push(() => (workerStopped ? undefined : worker.stop()));
    expect((await a.manager.registerWorker({ endpoint: worker.endpoint })).workerId).toBeDefined();

    // B never connects to the worker (A holds its lease), yet its catalog learns it from the directory.
    await waitFor(
      async () =>
        (await apiCall(b.url, '/api/capabilities')).body.capabilities.some(
          (c: any) => c.capability === 'shout',
        ),
      15_000,
      "manager B's catalog listing shout",
    );
    expect(b.manager.localWorkers()).toEqual([]);
    const listed = (await apiCall(b.url, '/api/capabilities')).body.capabilities.find(
      (c: any) => c.capability === 'shout',
    );
    const described = describeHandler(shout);
    expect(listed).toMatchObject({
      capability: 'shout',
      description: shout.description,
      payloadSchema: described.payloadSchema,
      resultSchema: described.resultSchema,
      idempotent: true,
      readOnly: true,
      workerTypes: ['shouter'],
      workers: 1,
    });
    expect(eventsOnB).toContainEqual(expect.objectContaining({ type: 'catalog', added: ['shout'] }));

    // A bad payload submitted to B is refused there, naming the path and the rule, before it is queued.
    const bad = await apiCall(b.url, '/api/tasks', {
      method: 'POST',
      body: JSON.stringify({ capability: 'shout', payload: { text: 'hi', times: 9 } }),
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({
      code: 'invalid_payload',
      details: { path: 'times', rule: 'maximum' },
    });

    // A good one is queued by B and run by A's worker through the shared queue.
    const ok = await apiCall(b.url, '/api/tasks?wait=true', {
      method: 'POST',
      body: JSON.stringify({ capability: 'shout', payload: { text: 'hi', times: 2 } }),
    });
    expect(ok.body.task ?? ok.body).toMatchObject({ state: 'succeeded', output: { shouted: 'HI HI' } });

    // B's MCP gateway offers it as a tool; the SDK client checks the structuredContent against outputSchema.
    const agent = new Client({ name: 'fleet-catalog-test', version: '1' });
    await agent.connect(new StreamableHTTPClientTransport(new URL('/mcp', b.url)));
    cleanups.push(() => agent.close());
    const tool = (await agent.listTools()).tools.find((t) => t.name === 'shout');
    expect(tool).toMatchObject({
      inputSchema: { properties: { text: { type: 'string' } } },
      outputSchema: { properties: { shouted: { type: 'string' } } },
    });
    const called = await agent.callTool({ name: 'shout', arguments: { text: 'mcp' } });
    expect(called.structuredContent).toEqual({ shouted: 'MCP' });
    const refused = await agent.callTool({ name: 'shout', arguments: { text: 'x'.repeat(21) } });
    expect(refused.isError).toBe(true);
    expect((refused.content as { text: string }[])[0]!.text).toMatch(/^invalid_payload: .* at text/);

    // The worker goes: once its record lapses, B's catalog drops it and says so.
    await worker.stop();
    workerStopped = true;
    await waitFor(
      () => eventsOnB.some((e) => e.removed.includes('shout')),
      20_000,
      'manager B announcing that shout is gone',
    );
    const after = (await apiCall(b.url, '/api/capabilities')).body;
    expect(after.capabilities.map((c: any) => c.capability)).not.toContain('shout');
  }, 60_000);

  it('the directory stores each distinct description set once, and drops one that does not match its key', async () => {
    const prefix = prefixFor('fleet-describes');
    const dir = new RedisWorkerDirectory({ redis: { url: redis.url, prefix } });
    cleanups.push(() => dir.close());
    const raw = new Redis(redis.url);
    cleanups.push(() => void raw.disconnect());
    const describes = [describeHandler(shout)];
    const key = describesKey(describes);
    const record = (workerId: string) => ({
      workerId,
      workerType: 'shouter',
      endpoint: `ws://127.0.0.1:1/${workerId}`,
      port: 1,
      status: 'online' as const,
      capabilities: ['shout'],
      currentLoad: 0,
      inFlight: 0,
      maxConcurrency: 2,
      lastHeartbeat: Date.now(),
      describes,
      describesKey: key,
    });
    for (const id of ['w1', 'w2', 'w3']) await dir.publish(record(id), 60_000);
    // One copy of the schemas, not one per record; the records carry the key only.
    expect(await raw.keys(`${prefix}:dir:describes:*`)).toEqual([`${prefix}:dir:describes:${key}`]);
    expect(JSON.parse((await raw.get(`${prefix}:dir:worker:w1`))!)).not.toHaveProperty('describes');
    expect((await dir.list()).map((r) => r.describes)).toEqual([describes, describes, describes]);

    // Another reader (no cache), after the stored set was tampered with: the records stay, the schemas go.
    const other = new RedisWorkerDirectory({ redis: { url: redis.url, prefix } });
    cleanups.push(() => other.close());
    const tampered = [{ ...describes[0]!, payloadSchema: { type: 'object' } }];
    await raw.set(`${prefix}:dir:describes:${key}`, JSON.stringify(tampered), 'PX', 60_000);
    const listed = await other.list();
    expect(listed.map((r) => r.workerId)).toEqual(['w1', 'w2', 'w3']);
    expect(listed.every((r) => r.describes === undefined)).toBe(true);
    // Not descriptions at all, under a matching key: dropped too.
    const junk = JSON.stringify([{ capability: 42 }]);
    const junkKey = (await import('node:crypto')).createHash('sha256').update(junk).digest('hex');
    await raw.set(`${prefix}:dir:describes:${junkKey}`, junk, 'PX', 60_000);
    await raw.set(
      `${prefix}:dir:worker:w1`,
      JSON.stringify({ ...record('w1'), describes: undefined, describesKey: junkKey }),
      'PX',
      60_000,
    );
    expect((await other.list()).find((r) => r.workerId === 'w1')?.describes).toBeUndefined();
    // Descriptions written inline into a record, or a malformed key, are not taken, and the record stays.
    await raw.set(
      `${prefix}:dir:worker:w1`,
      JSON.stringify({ ...record('w1'), describes: 42, describesKey: '../../etc' }),
      'PX',
      60_000,
    );
    const inline = (await other.list()).find((r) => r.workerId === 'w1');
    expect(inline).toBeDefined();
    expect(inline?.describes).toBeUndefined();
    // A write after the set vanished (a Redis restart) puts it back.
    await raw.del(`${prefix}:dir:describes:${key}`);
    await dir.publish(record('w2'), 60_000);
    await dir.publish(record('w2'), 60_000);
    expect(await raw.exists(`${prefix}:dir:describes:${key}`)).toBe(1);
  });
});
