/**
 * Issue 14 point 7: a worker's /ws reads frames no bigger than the protocol needs and does not keep the
 * memory an abusive peer makes it read; `fleet up` gives its own children a token so no other local peer can
 * take their slots.
 */
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startFleetUp, type FleetUp } from '../../helpers/fleet-up.js';
import { freePort, spawnWorker, type WorkerProcess } from '../../helpers/processes.js';

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** Opens /ws without a token and resolves with what the worker did: its first frame and how it closed. */
function probe(endpoint: string, send?: Buffer): Promise<{ first?: Record<string, unknown>; code: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(endpoint, { maxPayload: 1024 * 1024 });
    let first: Record<string, unknown> | undefined;
    ws.on('open', () => {
      if (send) ws.send(send);
    });
    ws.on('message', (d: Buffer) => {
      first ??= JSON.parse(d.toString()) as Record<string, unknown>;
      if (!send) ws.close();
    });
    ws.on('error', () => undefined);
    ws.on('close', (code) => resolve({ ...(first ? { first } : {}), code }));
  });
}

describe('worker exposure (issue 14 point 7)', () => {
  const procs: WorkerProcess[] = [];
  let up: FleetUp | undefined;
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    await up?.stop();
    up = undefined;
  });

  it('8 frames of 60 MB: each is cut off early and the worker keeps no memory for them', async () => {
    const w = await spawnWorker('echo');
    procs.push(w);
    const pid = w.proc.pid!;
    const before = rssMb(pid);
    const big = Buffer.alloc(60 * 1024 * 1024, 0x20);
    for (let i = 0; i < 8; i++) {
      const r = await probe(w.endpoint, big);
      // 1009 "message too big": ws stopped reading the frame near the cap instead of buffering 60 MB.
      expect(r.code).toBe(1009);
    }
    const after = rssMb(pid);
    expect(after - before).toBeLessThan(100);
    // Still healthy and serving.
    const health = await fetch(`http://127.0.0.1:${w.port}/health`);
    expect(health.status).toBe(200);
  }, 120_000);

  it('a frame a little over the cap gets a typed frame_too_large and the connection stays usable', async () => {
    const w = await spawnWorker('echo');
    procs.push(w);
    const r = await new Promise<Record<string, unknown>[]>((resolve) => {
      const ws = new WebSocket(w.endpoint);
      const got: Record<string, unknown>[] = [];
      ws.on('message', (d: Buffer) => {
        got.push(JSON.parse(d.toString()) as Record<string, unknown>);
        if (got.length === 1) ws.send(Buffer.alloc(9 * 1024 * 1024 + 10, 0x20));
        if (got.length === 2) {
          ws.close();
          resolve(got);
        }
      });
    });
    expect(r[0]!.type).toBe('hello');
    expect(r[1]).toMatchObject({ type: 'error', error: { code: 'frame_too_large' } });
  });

  it('fleet up: its echo child refuses a local peer without the run token; the manager still uses it', async () => {
    const echoPort = await freePort();
    up = await startFleetUp(
      ['--only', 'echo'],
      {
        ...process.env,
        FLEET_PORT: String(await freePort()),
        WORKER_ECHO_PORT: String(echoPort),
        FLEET_LOG_LEVEL: 'warn',
        FLEET_TOKEN: '',
      },
      (workers) => workers.some((x) => x.workerType === 'echo' && x.status === 'online'),
      'echo online under fleet up',
    );
    const r = await probe(`ws://127.0.0.1:${echoPort}/ws`);
    expect(r.first).toMatchObject({ type: 'error', error: { code: 'unauthorized' } });
    expect(r.code).toBe(4401);
    // The API stays open (no API token was configured) and tasks run on the child.
    const res = await fetch(`${up.url}/api/tasks?wait=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ capability: 'echo', payload: { hi: 1 } }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { task: { state: string } }).task.state).toBe('succeeded');
  }, 90_000);
});
