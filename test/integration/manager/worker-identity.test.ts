/**
 * Issue 14 point 1: one worker id, one live connection. An endpoint alias or an impostor claiming a connected
 * worker's id is refused with a typed error and an alert, never takes a task, and never unsettles the real
 * worker's connection; with a token a worker proves itself before its id is believed.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../../src/protocol/messages.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { spawnWorker, type WorkerProcess } from '../../helpers/processes.js';

async function impostor(
  workerId: string,
  onAssign: () => void,
): Promise<{ endpoint: string; connections: () => number; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  let connections = 0;
  wss.on('connection', (ws: WebSocket) => {
    connections += 1;
    ws.send(
      JSON.stringify({
        type: 'hello',
        protocolVersion: PROTOCOL_VERSION,
        workerId,
        workerType: 'echo',
        capabilities: ['echo', 'sleep'],
        maxConcurrency: 50,
        version: 'impostor',
      }),
    );
    ws.on('message', (raw: Buffer) => {
      if ((JSON.parse(raw.toString()) as { type: string }).type === 'task.assign') onAssign();
    });
  });
  return {
    endpoint: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/ws`,
    connections: () => connections,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('one identity per worker (issue 14 point 1)', () => {
  let m: TestManager | undefined;
  const procs: WorkerProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    for (const c of cleanups.splice(0)) await c();
    await m?.stop();
    m = undefined;
  });

  it('registering ws://localhost:P for a worker known as ws://127.0.0.1:P resolves to the one worker', async () => {
    m = await startManager();
    const w = await spawnWorker('echo');
    procs.push(w);
    const first = await m.manager.registerWorker({ endpoint: w.endpoint });
    expect(first.workerId).toBeDefined();
    const alias = await m.manager.registerWorker({ endpoint: `ws://localhost:${w.port}/ws` });
    expect(alias).toMatchObject({ code: 'duplicate_worker' });
    const alerts = m.manager.operatorEvents.activeAlerts();
    expect(alerts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'duplicate_worker', workerId: first.workerId }),
      ]),
    );
    // Several discovery rounds later the worker is still the only one, online, and serving.
    await sleep(2000);
    const workers = m.manager.localWorkers();
    expect(workers).toHaveLength(1);
    expect(workers[0]!.status).toBe('online');
    const done = await Promise.all(Array.from({ length: 10 }, (_, i) => m!.client.execute('echo', { i })));
    expect(done.every((t) => t.state === 'succeeded' && t.attempts.length === 1)).toBe(true);
    // Asked again, the alias names the worker it reaches.
    expect(await m.manager.registerWorker({ endpoint: `ws://localhost:${w.port}/ws` })).toMatchObject({
      workerId: first.workerId,
      code: 'duplicate_worker',
    });
  }, 60_000);

  it('an impostor claiming a connected id gets no task, and its leaving does not cut the real worker', async () => {
    m = await startManager();
    const w = await spawnWorker('echo');
    procs.push(w);
    const real = await m.manager.registerWorker({ endpoint: w.endpoint });
    // Every (re)connection registers the worker again: none may happen while the impostor comes and goes.
    let reRegistered = 0;
    const off = m.manager.subscribe((e) => {
      if (e.type === 'worker' && e.kind === 'registered' && e.worker.workerId === real.workerId)
        reRegistered += 1;
    });
    cleanups.push(async () => off());
    let stolen = 0;
    const fake = await impostor(real.workerId!, () => (stolen += 1));
    cleanups.push(() => fake.close());
    const r = await m.manager.registerWorker({ endpoint: fake.endpoint });
    expect(r.code).toBe('duplicate_worker');
    const tasks = await Promise.all(Array.from({ length: 20 }, (_, i) => m!.client.submit('echo', { i })));
    for (const t of tasks) expect((await m.client.wait(t.id, 20_000)).state).toBe('succeeded');
    expect(stolen).toBe(0);
    await fake.close();
    // Old behaviour: "lost the ownership lease" cut the real worker every round from here on.
    await sleep(3000);
    const worker = m.manager.worker(real.workerId!)!;
    expect(worker.status).toBe('online');
    expect(reRegistered).toBe(0);
    const after = await m.client.execute('echo', { after: true });
    expect(after.attempts.map((a) => a.outcome)).toEqual(['succeeded']);
  }, 60_000);

  it('with a token, a peer that cannot prove it holds the token is refused before its id is believed', async () => {
    m = await startManager({ token: 'fleet-secret' });
    let stolen = 0;
    const fake = await impostor('echo-trusted', () => (stolen += 1));
    cleanups.push(() => fake.close());
    const r = await m.manager.registerWorker({ endpoint: fake.endpoint });
    expect(r.code).toBe('unauthorized');
    expect(m.manager.worker('echo-trusted')).toBeUndefined();
    // A real worker with the token proves itself and works.
    const w = await spawnWorker('echo', { env: { FLEET_TOKEN: 'fleet-secret' } });
    procs.push(w);
    const ok = await m.manager.registerWorker({ endpoint: w.endpoint });
    expect(ok.workerId).toBeDefined();
    expect((await m.client.execute('echo', { v: 1 })).state).toBe('succeeded');
    expect(stolen).toBe(0);
  }, 60_000);
});
