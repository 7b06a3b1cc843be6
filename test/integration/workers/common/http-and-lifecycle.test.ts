import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { runWorker } from '../../../../src/workers/common/run-worker.js';
import { createEchoKind } from '../../../../src/workers/echo/index.js';
import {
  connectFakeManager,
  useWorkers,
  workerConfig,
  type StartedWorker,
} from '../../../helpers/fake-manager.js';
import { createTestKind, newTestKindState, until } from './test-kinds.js';

type Health = {
  status: string;
  live: boolean;
  ready: boolean;
  workerType: string;
  load: { inFlight: number; maxConcurrency: number; utilization: number };
  [k: string]: unknown;
};

async function health(worker: StartedWorker): Promise<{ status: number; body: Health }> {
  const res = await fetch(`${worker.baseUrl}/health`);
  return { status: res.status, body: (await res.json()) as Health };
}

describe('/health, /metrics, heartbeats, drain and announcement', () => {
  const start = useWorkers();

  it('/health: 200 ok when idle, 200 busy at capacity (busy is not an error)', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')), { max_concurrent_tasks: 2 });
    const idle = await health(worker);
    expect(idle.status).toBe(200);
    expect(idle.body).toMatchObject({
      status: 'ok',
      live: true,
      ready: true,
      workerId: worker.server.workerId,
      workerType: 'echo',
      version: '0.1.0',
      capabilities: ['echo', 'sleep', 'fail', 'crash'],
      load: { inFlight: 0, maxConcurrency: 2, utilization: 0 },
      connections: 0,
      info: { pid: process.pid, name: 'echo' },
    });
    expect(idle.body.uptimeSec).toEqual(expect.any(Number));

    const fm = await connectFakeManager(worker.endpoint);
    const tasks = [fm.assign('sleep', { ms: 300 }), fm.assign('sleep', { ms: 300 })];
    await until(() => worker.server.inFlight === 2, 2_000, 'two tasks running');
    const full = await health(worker);
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({
      status: 'busy',
      ready: true,
      load: { inFlight: 2, maxConcurrency: 2, utilization: 1 },
      connections: 1,
    });
    await Promise.all(tasks);
    await fm.close();
  });

  it('/health: 503 not_ready while the kind says it is not ready', async () => {
    const state = newTestKindState();
    state.ready = false;
    const worker = await start(createTestKind(state));
    const res = await health(worker);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ status: 'not_ready', live: true, ready: false, info: { pool: 'fine' } });
    state.ready = true;
    expect((await health(worker)).status).toBe(200);
  });

  it('/metrics: per-server registry with task, slot, connection and process metrics', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')), { max_concurrent_tasks: 4 });
    const other = await start(createEchoKind(workerConfig('echo')));
    const fm = await connectFakeManager(worker.endpoint);
    await fm.assign('echo', {});
    await fm.assign('fail', {});
    await fm.assign('sleep', { ms: 5_000 }, { timeoutMs: 50 });
    await fm.assign('nope', {});
    const res = await fetch(`${worker.baseUrl}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/fleet_worker_tasks_total\{capability="echo",outcome="succeeded"[^}]*\} 1/);
    expect(text).toMatch(/fleet_worker_tasks_total\{capability="fail",outcome="failed"[^}]*\} 1/);
    expect(text).toMatch(/fleet_worker_tasks_total\{capability="sleep",outcome="timed_out"[^}]*\} 1/);
    expect(text).toMatch(/fleet_worker_tasks_total\{capability="\(unknown\)",outcome="rejected"[^}]*\} 1/);
    expect(text).toMatch(/fleet_worker_task_duration_seconds_bucket\{[^}]*capability="echo"/);
    expect(text).toMatch(/fleet_worker_max_concurrency\{[^}]*\} 4/);
    expect(text).toMatch(/fleet_worker_in_flight\{[^}]*\} 0/);
    expect(text).toMatch(/fleet_worker_connections\{[^}]*\} 1/);
    expect(text).toMatch(/process_resident_memory_bytes/);
    expect(text).toContain(`worker_id="${worker.server.workerId}"`);
    // The other server in this process reports only itself.
    const otherText = await (await fetch(`${other.baseUrl}/metrics`)).text();
    expect(otherText).not.toMatch(/fleet_worker_tasks_total\{/);
    expect(otherText).not.toContain(worker.server.workerId);
    await fm.close();
  });

  it('heartbeats carry in-flight, cpu, memory, draining and info at the welcome interval', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')));
    const fm = await connectFakeManager(worker.endpoint, { heartbeatIntervalMs: 40 });
    const running = fm.assign('sleep', { ms: 250 });
    const beats = [];
    for (let i = 0; i < 3; i++) beats.push(await fm.nextHeartbeat(2_000));
    for (const beat of beats) {
      expect(beat).toMatchObject({ type: 'heartbeat', draining: false, info: { pid: process.pid } });
      expect(beat.cpu).toBeGreaterThanOrEqual(0);
      expect(beat.memory).toBeGreaterThan(1024 * 1024);
    }
    expect(beats.some((b) => b.inFlight === 1)).toBe(true);
    await running;
    await fm.close();
  });

  it('drain (message or drain()): new tasks refused "draining", heartbeat and /health say so, running ones finish', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')));
    const fm = await connectFakeManager(worker.endpoint);
    const running = fm.assign('sleep', { ms: 200 });
    await until(() => worker.server.inFlight === 1, 2_000, 'task running');
    fm.drain('scale down');
    const beat = await fm.nextHeartbeat(2_000);
    expect(beat).toMatchObject({ draining: true, inFlight: 1 });
    expect(await fm.assign('echo', {})).toMatchObject({
      type: 'task.error',
      error: { code: 'draining', retryable: true },
    });
    const h = await health(worker);
    expect(h.status).toBe(503);
    expect(h.body).toMatchObject({ status: 'draining', live: true, ready: false });
    expect(await worker.server.drain(5_000)).toBe(true);
    expect(await running).toMatchObject({ type: 'task.result' });
    expect(worker.server.inFlight).toBe(0);
  });

  it('drain() gives up after drainTimeoutMs and reports false', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')), {}, { drainTimeoutMs: 80 });
    const fm = await connectFakeManager(worker.endpoint);
    const running = fm.assign('sleep', { ms: 2_000 });
    await until(() => worker.server.inFlight === 1, 2_000, 'task running');
    expect(await worker.server.drain()).toBe(false);
    await worker.server.stop();
    expect(await running).toMatchObject({ error: { code: 'cancelled' } });
  });

  it('progress floods are coalesced into few frames and capped with a truncation marker', async () => {
    const worker = await start(createTestKind(newTestKindState()), {}, { progress: { maxBytes: 20_000 } });
    const fm = await connectFakeManager(worker.endpoint);
    const { taskId, answer } = fm.dispatch('flood', { lines: 50_000, width: 20 });
    const chunks: { stream: string; data: string }[] = [];
    fm.onProgress(taskId, (p) => p.log && chunks.push(p.log));
    expect(await answer).toMatchObject({ type: 'task.result', output: { printed: 50_000 } });
    const text = chunks.map((c) => c.data).join('');
    expect(chunks.length).toBeLessThan(50);
    expect(text).toContain('[fleet: progress output truncated at 20000 bytes]');
    expect(Buffer.byteLength(text)).toBeLessThan(20_000 + 200);
    expect(chunks.some((c) => c.stream === 'stdout') && chunks.some((c) => c.stream === 'stderr')).toBe(true);
  });

  it('a result over the frame limit is answered payload_too_large instead of a frame the manager would refuse', async () => {
    const worker = await start(createTestKind(newTestKindState()), {}, { maxFrameBytes: 100_000 });
    const fm = await connectFakeManager(worker.endpoint);
    expect(await fm.assign('big', { bytes: 50_000 })).toMatchObject({ type: 'task.result' });
    const answer = await fm.assign('big', { bytes: 200_000 });
    expect(answer).toMatchObject({
      type: 'task.error',
      error: { code: 'payload_too_large', details: { limit: 100_000 } },
    });
  });

  it('announces itself to the manager (POST /api/workers, Bearer token) at start and periodically', async () => {
    const posts: { auth: string | undefined; body: unknown }[] = [];
    const manager: Server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/api/workers')
          posts.push({ auth: req.headers.authorization, body: JSON.parse(body) });
        res.statusCode = posts.length === 1 ? 500 : 202; // a refusal is retried on the next tick
        res.end();
      });
    });
    await new Promise<void>((r) => manager.listen(0, '127.0.0.1', r));
    try {
      const port = (manager.address() as AddressInfo).port;
      const worker = await start(
        createEchoKind(workerConfig('echo')),
        {},
        { managerUrl: `http://127.0.0.1:${port}/`, token: 'tok', announceIntervalMs: 50 },
      );
      await until(() => posts.length >= 3, 3_000, 'three announcements');
      expect(posts[0]).toEqual({
        auth: 'Bearer tok',
        body: { endpoint: worker.endpoint, workerType: 'echo', workerId: worker.server.workerId },
      });
      await worker.server.stop();
      const after = posts.length;
      await new Promise((r) => setTimeout(r, 150));
      expect(posts.length).toBe(after);
    } finally {
      manager.closeAllConnections(); // fetch keeps sockets alive; close() alone would wait for them
      await new Promise((r) => manager.close(r));
    }
  });

  it('an unreachable manager does not stop the worker from serving', async () => {
    const worker = await start(
      createEchoKind(workerConfig('echo')),
      {},
      { managerUrl: 'http://127.0.0.1:9/', announceIntervalMs: 30 },
    );
    await new Promise((r) => setTimeout(r, 100));
    const fm = await connectFakeManager(worker.endpoint);
    expect(await fm.assign('echo', { ok: 1 })).toMatchObject({ type: 'task.result' });
    await fm.close();
  });

  it('a port already in use is a config_invalid error naming host and port', async () => {
    const first = await start(createEchoKind(workerConfig('echo')));
    const { WorkerServer } = await import('../../../../src/workers/common/server.js');
    const clash = new WorkerServer({
      kind: createEchoKind(workerConfig('echo')),
      config: { ...workerConfig('echo'), port: first.server.port },
      logger: pino({ level: 'silent' }),
    });
    await expect(clash.start()).rejects.toMatchObject({
      code: 'config_invalid',
      message: expect.stringContaining(`127.0.0.1:${first.server.port}`),
    });
  });
});

describe('runWorker', () => {
  it('starts, logs the endpoint, drains on the first signal and exits 0', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const exits: number[] = [];
    const server = await runWorker(createEchoKind(workerConfig('echo')), {
      config: workerConfig('echo'),
      logger,
      signals: ['SIGUSR2'],
      exit: (code) => exits.push(code),
    });
    try {
      expect(lines.some((l) => l.includes(`listening on ${server.endpoint}`))).toBe(true);
      const fm = await connectFakeManager(server.endpoint);
      const running = fm.assign('sleep', { ms: 150 });
      await until(() => server.inFlight === 1, 2_000, 'task running');
      process.emit('SIGUSR2', 'SIGUSR2');
      expect(await fm.assign('echo', {})).toMatchObject({ error: { code: 'draining' } });
      expect(await running).toMatchObject({ type: 'task.result' });
      await until(() => exits.length > 0, 5_000, 'exit');
      expect(exits).toEqual([0]);
      expect(process.listenerCount('SIGUSR2')).toBe(0);
    } finally {
      await server.stop();
    }
  });
});
