/**
 * Issue 14 point 4, reconciliation attacked: a peer that reports, in its hello, the lease of a task running
 * on another worker (a leaked token) or a lease it never had, and then answers for those tasks, changes
 * nothing. Its report is refused or answered with a cancel to itself, counted in
 * fleet_reconciled_tasks_total; the real worker's task runs on and completes once. Real manager, real echo
 * worker process, and the forged peer on a real WebSocket.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../../src/protocol/messages.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';

interface Lease {
  taskId: string;
  attempt: number;
  leaseToken: string;
}

/** A peer that reports the given leases and, once welcomed, answers for them as if it ran them. */
async function forger(report: { inFlight: Lease[]; finished: Lease[] }) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const received: { type: string; taskId?: string; leaseToken?: string }[] = [];
  wss.on('connection', (ws: WebSocket) => {
    ws.send(
      JSON.stringify({
        type: 'hello',
        protocolVersion: PROTOCOL_VERSION,
        workerId: 'mallory',
        workerType: 'echo',
        capabilities: ['echo', 'sleep'],
        maxConcurrency: 4,
        version: 'forger',
        ...report,
      }),
    );
    ws.on('message', (raw: Buffer) => {
      const m = JSON.parse(raw.toString()) as { type: string; taskId?: string; leaseToken?: string };
      received.push(m);
      if (m.type !== 'welcome') return;
      for (const l of [...report.finished, ...report.inFlight])
        ws.send(JSON.stringify({ type: 'task.result', ...l, output: { forged: true }, durationMs: 1 }));
    });
  });
  return {
    endpoint: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/ws`,
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

async function metric(url: string, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && l.includes(label))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

describe('reconciliation under attack (issue 14 point 4)', () => {
  let m: TestManager | undefined;
  let w: WorkerProcess | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    w?.kill('SIGKILL');
    for (const c of cleanups.splice(0)) await c();
    await m?.stop();
    m = w = undefined;
  });

  it("another worker's lease, a lease never issued: refused or cancelled on the reporter, counted, nothing changes", async () => {
    m = await startManager();
    w = await spawnWorker('echo');
    const real = await m.manager.registerWorker({ endpoint: w.endpoint });
    const running = await m.client.submit('sleep', { ms: 1500 });
    await waitFor(async () => (await m!.manager.getTask(running.id))?.state === 'running', 5_000, 'running');
    const record = await m.manager.getTask(running.id);
    // No python worker here: this one stays queued.
    const queued = await m.client.submit('python-execution', { code: '1' });
    const leaked: Lease = { taskId: running.id, attempt: 1, leaseToken: record.leaseToken! };
    const forged: Lease = { taskId: queued.id, attempt: 1, leaseToken: 'never-issued' };
    const unknown: Lease = { taskId: 'no-such-task', attempt: 1, leaseToken: 'never-issued' };
    const peer = await forger({ inFlight: [leaked], finished: [forged, unknown] });
    cleanups.push(peer.close);
    const staleBefore = await metric(m.url, 'fleet_stale_results_total');
    expect((await m.manager.registerWorker({ endpoint: peer.endpoint })).workerId).toBe('mallory');
    await waitFor(() => peer.received.filter((r) => r.type === 'task.cancel').length === 3, 5_000, 'cancels');

    // The reporter was told to stop what it claimed, each by the lease it named; nothing else changed.
    expect(
      peer.received
        .filter((r) => r.type === 'task.cancel')
        .map((r) => `${r.taskId} ${r.leaseToken}`)
        .sort(),
    ).toEqual([leaked, forged, unknown].map((l) => `${l.taskId} ${l.leaseToken}`).sort());
    expect(await metric(m.url, 'fleet_reconciled_tasks_total', 'outcome="refused"')).toBe(1);
    expect(await metric(m.url, 'fleet_reconciled_tasks_total', 'outcome="cancelled"')).toBe(2);
    expect(await metric(m.url, 'fleet_reconciled_tasks_total', 'outcome="adopted"')).toBe(0);
    // Its answers for those tasks were dropped as stale.
    expect(await metric(m.url, 'fleet_stale_results_total')).toBeGreaterThanOrEqual(staleBefore + 3);
    const q = await m.manager.getTask(queued.id);
    expect(q.state).toBe('queued');
    expect(q.attempts).toHaveLength(0);

    const done = await m.client.wait(running.id, 10_000);
    expect(done.state).toBe('succeeded');
    expect(done.output).toMatchObject({ sleptMs: expect.any(Number) });
    expect(done.attempts).toHaveLength(1);
    expect(done.attempts[0]!.workerId).toBe(real.workerId);
  }, 30_000);
});
