import { WebSocketServer, type WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { FleetClient } from '../../../src/client/fleet-client.js';
import { PROTOCOL_VERSION } from '../../../src/protocol/messages.js';
import { MemoryTaskQueue } from '../../../src/manager/queue/memory-task-queue.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { testQueueOptions } from '../../helpers/queue-options.js';

/** A hand-driven worker: speaks the protocol from a test script, so a test can misbehave on purpose. */
async function scriptedWorker(
  onConnect: (ws: WebSocket) => void,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wss.on('connection', (ws) => onConnect(ws));
  const port = (wss.address() as { port: number }).port;
  return {
    endpoint: `ws://127.0.0.1:${port}/ws`,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

function hello(workerId: string, extra: Record<string, unknown> = {}) {
  return JSON.stringify({
    type: 'hello',
    protocolVersion: PROTOCOL_VERSION,
    workerId,
    workerType: 'echo',
    capabilities: ['echo', 'sleep'],
    maxConcurrency: 2,
    version: 'test',
    ...extra,
  });
}

describe('failure handling', () => {
  let m: TestManager | undefined;
  const workers: WorkerProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) {
      w.proc.kill('SIGCONT');
      w.kill('SIGKILL');
    }
    for (const c of cleanups.splice(0)) await c();
    await m?.stop();
    m = undefined;
  });

  async function online(n: number) {
    await waitFor(
      () => m!.manager.localWorkers().filter((w) => w.status === 'online' || w.status === 'busy').length >= n,
      15_000,
      `${n} workers online`,
    );
  }

  it('kill -9 of a worker mid-task: the task completes on another worker, once', async () => {
    m = await startManager();
    const a = await spawnWorker('echo');
    const b = await spawnWorker('echo');
    workers.push(a, b);
    await m.manager.registerWorker({ endpoint: a.endpoint });
    await online(1);
    const task = await m.client.submit('sleep', { ms: 1500 });
    await waitFor(
      async () => (await m!.client.get(task.id)).state === 'running',
      10_000,
      'task running on a',
    );
    await m.manager.registerWorker({ endpoint: b.endpoint });
    await online(2);
    const killedAt = Date.now();
    a.kill('SIGKILL');
    const done = await m.client.wait(task.id, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.attempts.map((x) => x.outcome)).toEqual(['worker_lost', 'succeeded']);
    expect(done.attempts[1]!.workerId).not.toBe(done.attempts[0]!.workerId);
    const lost = m.manager.localWorkers().find((w) => w.workerId === done.attempts[0]!.workerId)!;
    expect(lost.status).toBe('offline');
    // Detection comes from the closed socket, well within a second.
    expect(done.attempts[0]!.finishedAt! - killedAt).toBeLessThan(1000);
    const finished = await m.manager.listTasks({ state: 'succeeded' });
    expect(finished.filter((t) => t.id === task.id)).toHaveLength(1);
  });

  it('a worker that stops answering (SIGSTOP) goes offline and its tasks run elsewhere; it rejoins after SIGCONT', async () => {
    m = await startManager();
    const a = await spawnWorker('echo');
    workers.push(a);
    await m.manager.registerWorker({ endpoint: a.endpoint });
    await online(1);
    const task = await m.client.submit('sleep', { ms: 5000 });
    await waitFor(async () => (await m!.client.get(task.id)).state === 'running', 10_000, 'task running');
    const b = await spawnWorker('echo');
    workers.push(b);
    await m.manager.registerWorker({ endpoint: b.endpoint });
    await online(2);
    a.proc.kill('SIGSTOP');
    const done = await m.client.wait(task.id, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.attempts[0]!.outcome).toBe('worker_lost');
    expect(done.attempts[0]!.error?.message).toMatch(/no heartbeat/);
    a.proc.kill('SIGCONT');
    // Discovery re-dials the endpoint; the resumed worker rejoins.
    await waitFor(
      () =>
        m!.manager
          .localWorkers()
          .filter((w) => w.endpoint === a.endpoint && (w.status === 'online' || w.status === 'busy'))
          .length === 1,
      20_000,
      'a rejoins',
    );
    const again = await m.client.execute('echo', { after: 'resume' });
    expect(again.state).toBe('succeeded');
  });

  it('a restarted worker process rejoins on its endpoint', async () => {
    m = await startManager();
    const a = await spawnWorker('echo');
    workers.push(a);
    await m.manager.registerWorker({ endpoint: a.endpoint });
    await online(1);
    a.kill('SIGKILL');
    await a.exited;
    await waitFor(() => m!.manager.localWorkers().every((w) => w.status === 'offline'), 5000, 'offline');
    const a2 = await spawnWorker('echo', { port: a.port });
    workers.push(a2);
    await waitFor(
      () => m!.manager.localWorkers().some((w) => w.status === 'online' || w.status === 'busy'),
      20_000,
      'rejoined',
    );
    // The dead process's record is replaced, not left behind.
    expect(m.manager.localWorkers()).toHaveLength(1);
    expect((await m.client.execute('echo', { n: 1 })).state).toBe('succeeded');
  });

  it('a late result from a lease that is no longer current is dropped: exactly-once completion', async () => {
    // The test keeps the queue to ask it directly; the manager's own is private.
    const queue = new MemoryTaskQueue(testQueueOptions());
    m = await startManager({}, { deps: { queue } });
    let firstAssign: Record<string, unknown> | undefined;
    let latest: WebSocket | undefined;
    let connections = 0;
    // The rogue takes the task, then stays silent (like a suspended process): no heartbeats, no answer.
    const w1 = await scriptedWorker((ws) => {
      connections += 1;
      latest = ws;
      // After its first task it only offers `sleep`, so the retried echo task goes to the real worker.
      ws.send(hello('rogue', firstAssign ? { capabilities: ['sleep'] } : {}));
      ws.on('message', (raw: Buffer) => {
        const msg = JSON.parse(raw.toString()) as Record<string, unknown>;
        if (msg.type === 'task.assign' && !firstAssign) firstAssign = msg;
      });
    });
    cleanups.push(() => w1.close());
    await m.manager.registerWorker({ endpoint: w1.endpoint });
    const task = await m.client.submit('echo', { v: 1 });
    await waitFor(() => firstAssign !== undefined, 10_000, 'assign to rogue');
    // The silent worker is declared dead; the task moves to a real worker and completes.
    const real = await spawnWorker('echo');
    workers.push(real);
    await m.manager.registerWorker({ endpoint: real.endpoint });
    const done = await m.client.wait(task.id, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.output).toEqual({ v: 1 });
    expect(done.attempts.map((x) => x.outcome)).toEqual(['worker_lost', 'succeeded']);
    // The rogue "wakes up" on a fresh connection (the manager re-dials it) and answers with its old lease.
    await waitFor(() => connections >= 2 && latest?.readyState === 1, 15_000, 'rogue re-dialed');
    const staleCount = async () => (await m!.manager.metrics.staleResults.get()).values[0]?.value ?? 0;
    const before = await staleCount();
    latest!.send(
      JSON.stringify({
        type: 'task.result',
        taskId: task.id,
        attempt: firstAssign!.attempt,
        leaseToken: firstAssign!.leaseToken,
        output: { v: 'LATE' },
        durationMs: 1,
      }),
    );
    await waitFor(async () => (await staleCount()) === before + 1, 5000, 'stale result counted');
    const afterTask = await m.client.get(task.id);
    expect(afterTask.output).toEqual({ v: 1 });
    expect(afterTask.attempts.filter((x) => x.outcome === 'succeeded')).toHaveLength(1);
    // And the queue itself refuses the stale lease.
    await expect(
      queue.complete(task.id, firstAssign!.leaseToken as string, { v: 'LATE' }),
    ).rejects.toMatchObject({ code: expect.stringMatching(/stale_lease|conflict/) });
  });

  it('malformed frames, unknown types and a protocol mismatch from a worker get typed errors; nothing else breaks', async () => {
    m = await startManager();
    const replies: Record<string, unknown>[] = [];
    const bad = await scriptedWorker((ws) => {
      ws.on('message', (raw: Buffer) => replies.push(JSON.parse(raw.toString()) as Record<string, unknown>));
      ws.send(hello('bad-frames'));
      setTimeout(() => {
        ws.send('{not json');
        ws.send(JSON.stringify({ type: 'no.such.message' }));
        ws.send(JSON.stringify({ type: 'heartbeat', inFlight: 'many' }));
      }, 100);
    });
    cleanups.push(() => bad.close());
    const mismatch = await scriptedWorker((ws) => {
      ws.on('message', (raw: Buffer) => replies.push(JSON.parse(raw.toString()) as Record<string, unknown>));
      ws.send(hello('future', { protocolVersion: PROTOCOL_VERSION + 1 }));
    });
    cleanups.push(() => mismatch.close());
    const good = await spawnWorker('echo');
    workers.push(good);
    const r1 = await m.manager.registerWorker({ endpoint: bad.endpoint });
    const r2 = await m.manager.registerWorker({ endpoint: mismatch.endpoint });
    expect(r1.workerId).toBe('bad-frames');
    expect(r2.error).toMatch(/protocol/);
    await m.manager.registerWorker({ endpoint: good.endpoint });
    await waitFor(() => replies.filter((r) => r.type === 'error').length >= 4, 10_000, 'error replies');
    const codes = replies.filter((r) => r.type === 'error').map((r) => (r.error as { code: string }).code);
    expect(codes).toEqual(
      expect.arrayContaining(['bad_frame', 'unknown_message', 'invalid_message', 'protocol_mismatch']),
    );
    expect(m.manager.worker('future')).toBeUndefined();
    const t = await m.client.execute('echo', { still: 'fine' });
    expect(t.state).toBe('succeeded');
  });

  it('with a token, a worker with another token refuses the manager with a typed error', async () => {
    m = await startManager({ token: 'right-token' });
    const w = await spawnWorker('echo', { env: { FLEET_TOKEN: 'other-token' } });
    workers.push(w);
    const r = await m.manager.registerWorker({ endpoint: w.endpoint });
    expect(r.error).toMatch(/token/);
    const res = await fetch(`${m.url}/api/tasks`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    await expect(
      new FleetClient({ url: m.url, token: 'wrong' }).events(() => undefined),
    ).rejects.toMatchObject({
      code: 'unauthorized',
    });
    const close = await m.client.events(() => undefined);
    close();
  });
});
