/**
 * Issue 16: FleetClient over the persistent WebSocket channel (/api/channel): requests multiplexed by rid,
 * backpressure, reconnect and resubscribe (a result still arrives exactly once), typed errors for bad
 * frames, the manager's token, bounded frames and in-flight requests.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { FleetClient } from '../../../src/client/fleet-client.js';
import type { ApiServerOptions } from '../../../src/manager/http/server.js';
import { FleetError } from '../../../src/protocol/errors.js';
import { WorkerServer } from '../../../src/workers/common/server.js';
import { createEchoKind } from '../../../src/workers/echo/index.js';
import { parseConfig } from '../../../src/config/load.js';
import { startManager, type TestManager } from '../../helpers/manager.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fleet(
  overrides: Record<string, unknown> = {},
  api: ApiServerOptions = {},
): Promise<TestManager> {
  const section = parseConfig({ echo: { port: 0, max_concurrent_tasks: 64 } }).echo;
  const worker = new WorkerServer({
    kind: createEchoKind(section),
    config: section,
    logger: pino({ level: 'silent' }),
    ...(typeof overrides.token === 'string' ? { token: overrides.token } : {}),
  });
  await worker.start();
  cleanups.push(() => worker.stop());
  const m = await startManager(overrides, { api });
  cleanups.push(() => m.stop());
  await m.manager.registerWorker({ endpoint: worker.endpoint });
  return m;
}

function wsClient(
  url: string,
  extra: Partial<ConstructorParameters<typeof FleetClient>[0]> = {},
): FleetClient {
  const c = new FleetClient({ url, channel: 'websocket', ...extra });
  cleanups.push(() => c.close());
  return c;
}

/** A raw socket on the channel that collects every frame the manager sends. */
async function rawChannel(url: string, headers: Record<string, string> = {}, query = '') {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/channel${query}`, { headers });
  const frames: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (d: Buffer) => {
    frames.push(JSON.parse(d.toString()) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  cleanups.push(() => ws.terminate());
  const next = async (pred: (f: Record<string, unknown>) => boolean, ms = 5000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = frames.find(pred);
      if (f) return f;
      if (Date.now() > deadline) throw new Error(`no such frame; got ${JSON.stringify(frames)}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  await next((f) => f.type === 'hello');
  return { ws, frames, next };
}

/** A TCP proxy in front of the manager whose connections the test can cut, as a network drop would. */
async function cuttableProxy(target: string): Promise<{ url: string; cut(): void; server: Server }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    server,
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
}

describe('FleetClient over the WebSocket channel', () => {
  it('executes, submits, gets, waits, cancels and submits batches over one connection', async () => {
    const m = await fleet();
    const c = wsClient(m.url);
    await c.connect();
    const done = await c.execute('echo', { hello: 'ws' });
    expect(done.state).toBe('succeeded');
    expect(done.output).toEqual({ hello: 'ws' });

    const queued = await c.submit('sleep', { ms: 50 });
    expect(['queued', 'assigned', 'running']).toContain(queued.state);
    expect((await c.wait(queued.id)).state).toBe('succeeded');
    expect((await c.get(queued.id)).state).toBe('succeeded');

    const long = await c.submit('sleep', { ms: 30_000 });
    const cancelled = await c.cancel(long.id);
    expect(cancelled.state).toBe('cancelled');

    const batch = await c.submitMany([
      { capability: 'echo', payload: { n: 1 } },
      { capability: 'echo', payload: { n: 2 } },
    ]);
    expect(batch.map((b) => b.created)).toEqual([true, true]);
    const finals = await Promise.all(batch.map((b) => c.wait(b.task.id)));
    expect(finals.map((t) => t.output)).toEqual([{ n: 1 }, { n: 2 }]);

    await expect(c.get('no-such-task')).rejects.toMatchObject({ code: 'not_found' });
    // A refused request costs only itself: the channel goes on.
    await expect(c.execute('no-such-capability', {})).rejects.toMatchObject({ code: 'unknown_capability' });
    expect((await c.execute('echo', { again: true })).state).toBe('succeeded');
  });

  it('many requests at once beyond the manager in-flight bound: the client queues, every one finishes', async () => {
    const m = await fleet({}, { channelMaxInFlight: 4 });
    const c = wsClient(m.url);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => c.execute('echo', { i })));
    expect(results.every((t) => t.state === 'succeeded')).toBe(true);
    expect(results.map((t) => (t.output as { i: number }).i)).toEqual(
      Array.from({ length: 200 }, (_, i) => i),
    );
  });

  it('streams progress while waiting', async () => {
    const m = await fleet();
    const c = wsClient(m.url);
    const seen: number[] = [];
    const t = await c.execute(
      'sleep',
      { ms: 300, progressEvery: 50 },
      { onProgress: (p) => seen.push(p.percent ?? -1) },
    );
    expect(t.state).toBe('succeeded');
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.every((p) => p > 0 && p <= 100)).toBe(true);
  });

  it('reconnect mid-task: the result still arrives, exactly once, and the task ran once', async () => {
    const m = await fleet();
    const proxy = await cuttableProxy(m.url);
    const c = wsClient(proxy.url);
    await c.connect();
    const progress: number[] = [];
    const pending = c.execute(
      'sleep',
      { ms: 800, progressEvery: 100 },
      { onProgress: (p) => progress.push(p.percent ?? 0) },
    );
    await new Promise((r) => setTimeout(r, 250));
    proxy.cut(); // the network drops the channel while the task runs
    const t = await pending;
    expect(t.state).toBe('succeeded');
    expect(t.attempts).toHaveLength(1);
    const all = await m.manager.listTasks({ capability: 'sleep', limit: 100 });
    expect(all).toHaveLength(1);
    // The waiter came back on the new connection: progress from after the cut reached it too.
    expect(Math.max(...progress)).toBeGreaterThan(50);

    // Exactly once on the wire as well: a frame the manager sends twice for one rid settles it once.
    const raw = await rawChannel(m.url);
    raw.ws.send(
      JSON.stringify({
        type: 'submit',
        rid: 'r1',
        task: { id: 'dup-1', capability: 'echo', payload: {} },
        wait: true,
      }),
    );
    raw.ws.send(
      JSON.stringify({
        type: 'submit',
        rid: 'r2',
        task: { id: 'dup-1', capability: 'echo', payload: {} },
        wait: true,
      }),
    );
    await raw.next((f) => f.type === 'result' && f.rid === 'r1');
    await raw.next((f) => f.type === 'result' && f.rid === 'r2');
    expect((await m.manager.listTasks({ capability: 'echo' })).filter((x) => x.id === 'dup-1')).toHaveLength(
      1,
    );
  });

  it('a submit sent before the connection dropped is not doubled when it is sent again', async () => {
    const m = await fleet();
    const proxy = await cuttableProxy(m.url);
    const c = wsClient(proxy.url);
    await c.connect();
    // Cut right after the frame leaves: the manager may or may not have the task; either way one task.
    const p = c.execute('sleep', { ms: 100 }, { id: 'resent-once' });
    setImmediate(() => proxy.cut());
    expect((await p).state).toBe('succeeded');
    expect((await m.manager.listTasks({ capability: 'sleep' })).map((t) => t.id)).toEqual(['resent-once']);
  });

  it('a manager that stays away: waiting calls fail with manager_unreachable after reconnectTimeoutMs', async () => {
    const m = await fleet();
    const proxy = await cuttableProxy(m.url);
    const c = wsClient(proxy.url, { reconnectTimeoutMs: 300 });
    await c.connect();
    const p = c.execute('sleep', { ms: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    proxy.server.close(); // no new connections...
    proxy.cut(); // ...and the current one dropped
    const started = Date.now();
    await expect(p).rejects.toMatchObject({ code: 'manager_unreachable' });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('the channel guards', () => {
  it('bad frames get typed errors carrying their rid, and the connection stays usable', async () => {
    const m = await fleet();
    const raw = await rawChannel(m.url);
    raw.ws.send('{not json');
    expect(await raw.next((f) => f.type === 'error')).toMatchObject({ error: { code: 'bad_frame' } });
    raw.ws.send(JSON.stringify({ type: 'launch', rid: 'x1' }));
    expect(await raw.next((f) => f.rid === 'x1')).toMatchObject({
      type: 'error',
      error: { code: 'unknown_message' },
    });
    raw.ws.send(JSON.stringify({ type: 'wait', rid: 'x2' }));
    expect(await raw.next((f) => f.rid === 'x2')).toMatchObject({
      type: 'error',
      error: { code: 'invalid_message' },
    });
    raw.ws.send(JSON.stringify({ type: 'submit', rid: 'x3', task: { payload: {} } }));
    expect(await raw.next((f) => f.rid === 'x3')).toMatchObject({
      type: 'error',
      error: { code: 'invalid_task' },
    });
    raw.ws.send(
      `{"type":"submit","rid":"x4","task":{"capability":"echo","payload":{"deep":${'['.repeat(200)}${']'.repeat(200)}}}}`,
    );
    expect(await raw.next((f) => f.rid === 'x4')).toMatchObject({
      type: 'error',
      error: { code: 'invalid_task' },
    });
    raw.ws.send(new Uint8Array([1, 2, 3]));
    await raw.next(
      (f) =>
        f.type === 'error' &&
        f.rid === undefined &&
        (f.error as { message: string }).message.includes('binary'),
    );
    raw.ws.send(
      JSON.stringify({
        type: 'submit',
        rid: 'ok',
        task: { capability: 'echo', payload: { v: 1 } },
        wait: true,
      }),
    );
    expect(await raw.next((f) => f.rid === 'ok')).toMatchObject({
      type: 'result',
      task: { state: 'succeeded', output: { v: 1 } },
    });
  });

  it('requests past the in-flight bound are refused with too_many_requests', async () => {
    const m = await fleet({}, { channelMaxInFlight: 2 });
    const raw = await rawChannel(m.url);
    expect(raw.frames[0]).toMatchObject({ type: 'hello', maxInFlight: 2 });
    for (const rid of ['a', 'b', 'c'])
      raw.ws.send(
        JSON.stringify({
          type: 'submit',
          rid,
          task: { capability: 'sleep', payload: { ms: 300 } },
          wait: true,
        }),
      );
    expect(await raw.next((f) => f.rid === 'c')).toMatchObject({
      type: 'error',
      error: { code: 'too_many_requests', retryable: true },
    });
    await raw.next((f) => f.rid === 'a' && f.type === 'result');
    await raw.next((f) => f.rid === 'b' && f.type === 'result');
    // Room again once answers are out.
    raw.ws.send(
      JSON.stringify({
        type: 'get',
        rid: 'd',
        taskId: (raw.frames.find((f) => f.rid === 'a')!.task as { id: string }).id,
      }),
    );
    expect(await raw.next((f) => f.rid === 'd')).toMatchObject({ type: 'task' });
  });

  it('frames over the limit: the manager closes 1009; FleetClient refuses them before sending', async () => {
    const m = await fleet({}, { bodyLimitBytes: 4096 });
    const raw = await rawChannel(m.url);
    const closed = new Promise<number>((r) => raw.ws.once('close', (code) => r(code)));
    raw.ws.send(
      JSON.stringify({
        type: 'submit',
        rid: 'big',
        task: { capability: 'echo', payload: 'x'.repeat(10_000) },
      }),
    );
    expect(await closed).toBe(1009);

    const c = wsClient(m.url);
    await c.connect();
    const err = await c.execute('echo', { x: 'x'.repeat(10_000) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FleetError);
    expect(err).toMatchObject({ code: 'frame_too_large' });
    expect((await c.execute('echo', { s: 'small' })).state).toBe('succeeded');
  });

  it("auth: the manager's token like the HTTP API; the read-only token may read, not submit", async () => {
    const m = await fleet({ token: 'op-secret', read_token: 'read-secret' }, { readToken: 'read-secret' });
    await expect(wsClient(m.url).execute('echo', {})).rejects.toMatchObject({ code: 'unauthorized' });
    await expect(wsClient(m.url, { token: 'wrong' }).connect()).rejects.toMatchObject({
      code: 'unauthorized',
    });
    const op = wsClient(m.url, { token: 'op-secret' });
    const t = await op.execute('echo', { ok: 1 });
    expect(t.state).toBe('succeeded');
    const reader = wsClient(m.url, { token: 'read-secret' });
    await expect(reader.execute('echo', {})).rejects.toMatchObject({ code: 'unauthorized' });
    await expect(reader.submitMany([{ capability: 'echo' }])).rejects.toMatchObject({ code: 'unauthorized' });
    await expect(reader.cancel(t.id)).rejects.toMatchObject({ code: 'unauthorized' });
    expect((await reader.get(t.id)).state).toBe('succeeded');
    expect((await reader.wait(t.id)).state).toBe('succeeded');
    const refused = await rawChannel(m.url).catch((e: unknown) => e);
    expect(String(refused)).toContain('401');
    // ?token= in the URL, for clients that cannot set headers, as on the event stream.
    const viaQuery = await rawChannel(`${m.url}`, {}, '?token=op-secret');
    viaQuery.ws.send(
      JSON.stringify({ type: 'submit', rid: 'q', task: { capability: 'echo', payload: {} }, wait: true }),
    );
    expect(await viaQuery.next((f) => f.rid === 'q')).toMatchObject({
      type: 'result',
      task: { state: 'succeeded' },
    });
  });
});
