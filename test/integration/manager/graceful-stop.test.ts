/**
 * Issue 14 point 3: SIGTERM stops a `fleet manager` process within its grace even while clients wait: new
 * submissions get 503 `shutting_down` (retryable), waiters and event streams are released with that error,
 * running tasks get `manager.shutdown_grace`, the log says how many tasks the memory store loses, exit 0.
 */
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startManagerProcess, type ManagerProcess } from '../../helpers/manager-process.js';
import { spawnWorker, type WorkerProcess } from '../../helpers/processes.js';

const post = (url: string, body: unknown, wait = false) =>
  fetch(`${url}/api/tasks${wait ? '?wait=1' : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/** Opens an event stream and resolves with the frames it got once the server closes it. */
function stream(
  url: string,
  path: string,
): { opened: Promise<void>; closed: Promise<{ code: number; frames: Record<string, unknown>[] }> } {
  const ws = new WebSocket(`${url.replace('http', 'ws')}${path}`);
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString()) as Record<string, unknown>));
  ws.on('error', () => undefined);
  return {
    opened: new Promise((r) => ws.once('message', () => r())),
    closed: new Promise((r) => ws.once('close', (code) => r({ code, frames }))),
  };
}

describe('graceful stop of a manager process (issue 14 point 3)', () => {
  const procs: WorkerProcess[] = [];
  let m: ManagerProcess | undefined;
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    if (m && m.proc.exitCode === null) m.proc.kill('SIGKILL');
    m = undefined;
  });

  it('with waiters, event streams and the dashboard open: 503 shutting_down, all released, exit 0 within the grace', async () => {
    const w = await spawnWorker('echo');
    procs.push(w);
    m = await startManagerProcess([w.endpoint], 3);
    // Two tasks that outlive the grace, one that finishes inside it, and queued ones behind them.
    const waits = [
      post(m.url, { capability: 'sleep', payload: { ms: 60_000 } }, true),
      post(m.url, { capability: 'sleep', payload: { ms: 60_000 } }, true),
    ];
    const short = await post(m.url, { capability: 'sleep', payload: { ms: 1000 } });
    const shortId = ((await short.json()) as { task: { id: string } }).task.id;
    const events = stream(m.url, '/api/events');
    const board = stream(m.url, '/dashboard/live');
    await Promise.all([events.opened, board.opened]);
    const waitById = fetch(`${m.url}/api/tasks/${shortId}/wait?timeoutMs=600000`);
    await new Promise((r) => setTimeout(r, 500));
    const signalledAt = Date.now();
    m.proc.kill('SIGTERM');
    // Every waiter is released at once with the typed, retryable error.
    for (const res of await Promise.all(waits)) {
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: 'shutting_down', retryable: true } });
    }
    expect((await waitById).status).toBe(503);
    for (const s of [events, board]) {
      const { code, frames } = await s.closed;
      expect(code).toBe(1001);
      expect(frames.at(-1)).toMatchObject({ type: 'error', error: { code: 'shutting_down' } });
    }
    // During the grace, new work is refused with 503 and reads still answer.
    const refused = await post(m.url, { capability: 'echo', payload: {} });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: { code: 'shutting_down', retryable: true } });
    const { code, at } = await m.exit;
    expect(code).toBe(0);
    // Bounded: grace (3 s) plus closing, not the tasks' 60 s.
    expect(at - signalledAt).toBeLessThan(10_000);
    expect(at - signalledAt).toBeGreaterThanOrEqual(2_500);
    expect(m.log()).toMatch(/shutdown: 2 tasks are lost \(0 queued, 2 running\)/);
  }, 60_000);

  it('a burst of 300 waiting submissions: SIGTERM mid-burst still exits 0 within the grace', async () => {
    const w = await spawnWorker('echo');
    procs.push(w);
    m = await startManagerProcess([w.endpoint], 2);
    type Answer = { status: number; body: { error?: { code: string } } };
    const burst = Array.from({ length: 300 }, (_, i): Promise<Answer> =>
      post(m!.url, { capability: 'sleep', payload: { ms: 200 + (i % 7) * 100 } }, true)
        .then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: { code: string } } }))
        .catch(() => ({ status: 0, body: {} })),
    );
    await new Promise((r) => setTimeout(r, 700));
    const signalledAt = Date.now();
    m.proc.kill('SIGTERM');
    const results = await Promise.all(burst);
    const { code, at } = await m.exit;
    expect(code).toBe(0);
    expect(at - signalledAt).toBeLessThan(10_000);
    // Each waiter got an answer: a final task, or the typed refusal; nothing else (no 409, no 500).
    for (const r of results) {
      if (r.status === 200) continue;
      expect(r.status).toBe(503);
      expect(r.body.error?.code).toBe('shutting_down');
    }
    expect(results.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    expect(m.log()).not.toMatch(/the task queue is closed/);
  }, 60_000);
});
