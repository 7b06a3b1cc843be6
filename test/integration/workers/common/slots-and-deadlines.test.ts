import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createEchoKind } from '../../../../src/workers/echo/index.js';
import {
  connectFakeManager,
  useWorkers,
  workerConfig,
  type TaskAnswer,
} from '../../../helpers/fake-manager.js';
import { createTestKind, gate, newTestKindState, until } from './test-kinds.js';

describe('task slots, deadlines and cancellation', () => {
  const start = useWorkers();

  it('a burst never runs more than max_concurrent_tasks at once; the rest are refused busy, not queued', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')), { max_concurrent_tasks: 3 });
    const fm = await connectFakeManager(worker.endpoint);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, worker.server.inFlight)), 1);
    const answers = await Promise.all(Array.from({ length: 20 }, () => fm.assign('sleep', { ms: 150 })));
    clearInterval(sampler);
    const ok = answers.filter((a) => a.type === 'task.result');
    const busy = answers.filter((a) => a.type === 'task.error' && a.error.code === 'busy');
    expect(ok).toHaveLength(3);
    expect(busy).toHaveLength(17);
    expect(busy[0]).toMatchObject({
      error: { retryable: true, details: { inFlight: 3, maxConcurrency: 3 } },
    });
    expect(peak).toBeLessThanOrEqual(3);
    // Refusals are immediate, not held until a slot frees.
    expect(Math.max(...busy.map((a) => a.durationMs))).toBe(0);
    expect(worker.server.inFlight).toBe(0);
    expect(await fm.assign('echo', { again: true })).toMatchObject({ type: 'task.result' });
    expect(fm.violations).toEqual([]);
  });

  it('slots are shared across manager connections', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')), { max_concurrent_tasks: 2 });
    const a = await connectFakeManager(worker.endpoint);
    const b = await connectFakeManager(worker.endpoint);
    const first = [a.assign('sleep', { ms: 200 }), b.assign('sleep', { ms: 200 })];
    await until(() => worker.server.inFlight === 2, 2_000, 'two running');
    expect(await a.assign('echo', {})).toMatchObject({ error: { code: 'busy' } });
    expect(await b.assign('echo', {})).toMatchObject({ error: { code: 'busy' } });
    expect((await Promise.all(first)).map((x) => x.type)).toEqual(['task.result', 'task.result']);
  });

  it('a task past its timeout is answered timeout (retryable) at once and its slot is freed', async () => {
    const worker = await start(createEchoKind(workerConfig('echo')), { max_concurrent_tasks: 1 });
    const fm = await connectFakeManager(worker.endpoint);
    const started = Date.now();
    const answer = await fm.assign('sleep', { ms: 10_000 }, { timeoutMs: 150 });
    const took = Date.now() - started;
    expect(answer).toMatchObject({ type: 'task.error', error: { code: 'timeout', retryable: true } });
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(2_000);
    await until(() => worker.server.inFlight === 0, 1_000, 'slot freed');
    expect(await fm.assign('echo', { next: 1 })).toMatchObject({ type: 'task.result' });
  });

  it('a handler that ignores its signal is answered at once but keeps its slot until it really returns', async () => {
    const state = newTestKindState();
    const worker = await start(createTestKind(state), { max_concurrent_tasks: 1 });
    const fm = await connectFakeManager(worker.endpoint);
    const answer = await fm.assign('stubborn', {}, { timeoutMs: 100 });
    expect(answer).toMatchObject({ type: 'task.error', error: { code: 'timeout' } });
    expect(worker.server.inFlight).toBe(1);
    // Still occupied: the limit holds even though the manager was told the task is over.
    expect(await fm.assign('big', { bytes: 1 })).toMatchObject({
      type: 'task.error',
      error: { code: 'busy' },
    });
    state.stubbornGate.open();
    await until(() => worker.server.inFlight === 0, 2_000, 'stubborn handler to return');
    expect(await fm.assign('big', { bytes: 1 })).toMatchObject({ type: 'task.result', output: 'y' });
    // The late result of the stubborn task was dropped, not sent.
    expect(fm.received.filter((m) => m.type === 'task.result' && m.output === 'finally')).toHaveLength(0);
  });

  it('task.cancel aborts the handler with a cancelled FleetError and frees the slot', async () => {
    const state = newTestKindState();
    const worker = await start(createTestKind(state), { max_concurrent_tasks: 1 });
    const fm = await connectFakeManager(worker.endpoint);
    const { taskId, leaseToken, answer } = fm.dispatch('watch', {});
    await until(() => state.signals.has(taskId), 2_000, 'task to start');
    fm.cancel(taskId, 'user pressed stop', 'some-other-lease');
    await new Promise((r) => setTimeout(r, 50));
    expect(state.signals.get(taskId)!.aborted).toBe(false); // a cancel for another lease is ignored
    fm.cancel(taskId, 'user pressed stop', leaseToken);
    const result = await answer;
    expect(result).toMatchObject({ type: 'task.error', error: { code: 'cancelled', retryable: false } });
    expect(result.type === 'task.error' && result.error.message).toMatch(/user pressed stop/);
    const signal = state.signals.get(taskId)!;
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toMatchObject({ code: 'cancelled' });
    await until(() => worker.server.inFlight === 0, 1_000, 'slot freed');
  });

  it('with reconnect_grace 0, losing the assigning connection aborts its tasks ("manager connection lost") and frees their slots', async () => {
    const state = newTestKindState();
    const worker = await start(createTestKind(state), { max_concurrent_tasks: 2, reconnect_grace: 0 });
    const a = await connectFakeManager(worker.endpoint);
    const b = await connectFakeManager(worker.endpoint);
    const lost = a.dispatch('watch', {});
    const kept = b.dispatch('watch', {});
    await until(() => state.signals.size === 2, 2_000, 'both tasks started');
    a.socket.terminate();
    await until(() => state.signals.get(lost.taskId)!.aborted, 2_000, 'abort on connection loss');
    expect(state.signals.get(lost.taskId)!.reason).toMatchObject({
      code: 'cancelled',
      message: 'manager connection lost',
    });
    expect(state.signals.get(kept.taskId)!.aborted).toBe(false);
    await until(() => worker.server.inFlight === 1, 1_000, 'one slot freed');
    await expect(lost.answer).rejects.toMatchObject({ code: 'worker_lost' });
    b.cancel(kept.taskId);
    expect(await kept.answer).toMatchObject({ error: { code: 'cancelled' } });
  });

  it('a manager that stops answering pings is dropped (with reconnect_grace 0 its tasks are aborted and their slots freed)', async () => {
    const state = newTestKindState();
    const worker = await start(createTestKind(state), { reconnect_grace: 0 }, { pingIntervalMs: 50 });
    const silent = new WebSocket(worker.endpoint, { autoPong: false });
    silent.on('error', () => undefined);
    await new Promise((resolve) => silent.once('message', resolve)); // hello
    const welcome = { type: 'welcome', protocolVersion: 1, managerId: 'm', heartbeatIntervalMs: 60_000 };
    silent.send(JSON.stringify(welcome));
    const assign = {
      type: 'task.assign',
      taskId: 'p1',
      attempt: 1,
      leaseToken: 'l',
      capability: 'watch',
      payload: {},
    };
    silent.send(JSON.stringify({ ...assign, deadline: Date.now() + 60_000, timeoutMs: 60_000 }));
    await until(() => state.signals.has('p1'), 2_000, 'task start');
    const closed = new Promise<number>((resolve) => silent.once('close', resolve));
    await until(() => state.signals.get('p1')!.aborted, 3_000, 'abort after missed pongs');
    expect(state.signals.get('p1')!.reason).toMatchObject({
      code: 'cancelled',
      message: 'manager connection lost',
    });
    expect(await closed).toBe(1006);
    await until(() => worker.server.inFlight === 0, 1_000, 'slot freed');
    // A live manager (ws answers pings itself) is not dropped.
    const fm = await connectFakeManager(worker.endpoint);
    await new Promise((r) => setTimeout(r, 200));
    expect(await fm.assign('big', { bytes: 2 })).toMatchObject({ type: 'task.result', output: 'yy' });
  });

  it('a duplicate assign (same task and lease) is ignored; a new lease for the same task aborts the old run', async () => {
    const state = newTestKindState();
    const worker = await start(createTestKind(state), { max_concurrent_tasks: 3 });
    const fm = await connectFakeManager(worker.endpoint);
    const first = fm.dispatch('watch', {}, { taskId: 'task-1', leaseToken: 'lease-a' });
    await until(() => state.signals.has('task-1'), 2_000, 'first run');
    const firstSignal = state.signals.get('task-1')!;
    fm.send({
      type: 'task.assign',
      taskId: 'task-1',
      attempt: 1,
      leaseToken: 'lease-a',
      capability: 'watch',
      payload: {},
      deadline: Date.now() + 10_000,
      timeoutMs: 10_000,
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(worker.server.inFlight).toBe(1);
    expect(firstSignal.aborted).toBe(false);

    const second = fm.dispatch('watch', {}, { taskId: 'task-1', leaseToken: 'lease-b', attempt: 2 });
    expect(await first.answer).toMatchObject({
      type: 'task.error',
      leaseToken: 'lease-a',
      error: { code: 'cancelled' },
    });
    expect(firstSignal.aborted).toBe(true);
    await until(() => state.signals.get('task-1') !== firstSignal, 2_000, 'second run');
    fm.cancel('task-1');
    expect(await second.answer).toMatchObject({
      type: 'task.error',
      leaseToken: 'lease-b',
      attempt: 2,
      error: { code: 'cancelled' },
    });
  });

  it('a plain throw becomes handler_error with the message and no stack', async () => {
    const worker = await start(createTestKind(newTestKindState()));
    const fm = await connectFakeManager(worker.endpoint);
    const answer = (await fm.assign('throws', {})) as Extract<TaskAnswer, { type: 'task.error' }>;
    expect(answer.error).toEqual({
      code: 'handler_error',
      message: 'plain failure with a secret stack',
      retryable: false,
    });
  });

  it('stop() aborts running tasks (answered cancelled), closes sockets and stops the kind once', async () => {
    const state = newTestKindState();
    const worker = await start(createTestKind(state));
    const fm = await connectFakeManager(worker.endpoint);
    const running = fm.dispatch('watch', {});
    await until(() => state.signals.has(running.taskId), 2_000, 'task start');
    const stopping = Promise.all([worker.server.stop(), worker.server.stop()]);
    expect(await running.answer).toMatchObject({
      error: { code: 'cancelled', message: 'the worker is stopping' },
    });
    await stopping;
    expect((await fm.closed).code).toBe(1001);
    expect(state.started).toBe(1);
    expect(state.stopped).toBe(1);
    await worker.server.stop();
    expect(state.stopped).toBe(1);
  });

  it('stop() does not wait forever for a handler that ignores its signal', async () => {
    const state = newTestKindState();
    const worker = await start(createTestKind(state));
    const fm = await connectFakeManager(worker.endpoint);
    const stuck = fm.dispatch('stubborn', {});
    await until(() => worker.server.inFlight === 1, 2_000, 'task start');
    const t0 = Date.now();
    await worker.server.stop({ graceMs: 100 });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(await stuck.answer).toMatchObject({ error: { code: 'cancelled' } });
    state.stubbornGate.open();
  });

  it('a gate helper sanity check: opening twice is harmless', async () => {
    const g = gate();
    g.open();
    g.open();
    await g.wait();
  });
});
