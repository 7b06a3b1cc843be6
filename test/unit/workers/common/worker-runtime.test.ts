import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { WORKER_DEFAULTS, workerSection } from '../../../../src/config/schema.js';
import { FleetError } from '../../../../src/protocol/errors.js';
import { InMemoryTransport } from '../../../../src/protocol/in-memory-transport.js';
import {
  ManagerToWorkerSchema,
  PROTOCOL_VERSION,
  WorkerToManagerSchema,
  type ManagerToWorker,
  type WorkerToManager,
} from '../../../../src/protocol/messages.js';
import { WorkerMetrics } from '../../../../src/workers/common/metrics.js';
import { MIN_HEARTBEAT_MS, WorkerRuntime } from '../../../../src/workers/common/worker-runtime.js';
import type {
  TaskContext,
  TaskHandler,
  TaskOutput,
  WorkerKind,
} from '../../../../src/workers/common/worker-kind.js';

const settle = () => new Promise<void>((r) => setImmediate(r));

/** A handler whose runs the test finishes by hand; `honour` decides whether it stops on abort. */
function manualHandler(honour: boolean) {
  const runs = new Map<
    string,
    { ctx: TaskContext; finish: (o: TaskOutput) => void; fail: (e: unknown) => void }
  >();
  const handler: TaskHandler<unknown> = {
    capability: 'manual',
    description: 'finished by the test',
    payloadSchema: z.unknown(),
    run(_p, ctx) {
      return new Promise<TaskOutput>((finish, fail) => {
        runs.set(ctx.taskId, { ctx, finish, fail });
        if (honour)
          ctx.signal.addEventListener('abort', () => fail(ctx.signal.reason as Error), { once: true });
      });
    },
  };
  return { handler, runs };
}

function setup(
  options: {
    max?: number;
    honour?: boolean;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- handlers of any payload type, as in WorkerKind
    handlers?: TaskHandler<any>[];
    heartbeatIntervalMs?: number;
    info?: () => Record<string, unknown>;
    reconnectGrace?: string;
  } = {},
) {
  const manual = manualHandler(options.honour ?? true);
  const kind: WorkerKind = {
    type: 'unit',
    version: '1.0.0',
    handlers: [manual.handler, ...(options.handlers ?? [])],
    info: options.info,
  };
  const config = workerSection({ ...WORKER_DEFAULTS.echo, name: 'unit', capabilities: [] }).parse({
    max_concurrent_tasks: options.max ?? 2,
    ...(options.reconnectGrace !== undefined ? { reconnect_grace: options.reconnectGrace } : {}),
  });
  const metrics = new WorkerMetrics({ workerType: 'unit', workerId: 'w1' });
  const runtime = new WorkerRuntime({
    kind,
    config,
    workerId: 'w1',
    logger: pino({ level: 'silent' }),
    metrics,
    maxFrameBytes: 1024 * 1024,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
  });
  const connect = async (welcome = true) => {
    const [workerSide, managerSide] = InMemoryTransport.createLinkedPair<ManagerToWorker, WorkerToManager>(
      ManagerToWorkerSchema,
      WorkerToManagerSchema,
    );
    const inbox: WorkerToManager[] = [];
    managerSide.onmessage = (m) => inbox.push(m);
    runtime.attach(workerSide);
    if (welcome) {
      await managerSide.send({
        type: 'welcome',
        protocolVersion: PROTOCOL_VERSION,
        managerId: 'm',
        heartbeatIntervalMs: 1_000,
      });
    }
    await settle();
    let n = 0;
    const assign = async (
      taskId: string,
      extra: Partial<Extract<ManagerToWorker, { type: 'task.assign' }>> = {},
    ) => {
      await managerSide.send({
        type: 'task.assign',
        taskId,
        attempt: 1,
        leaseToken: `lease-${taskId}-${n++}`,
        capability: 'manual',
        payload: {},
        deadline: Date.now() + 10_000,
        timeoutMs: 10_000,
        ...extra,
      });
      await settle();
    };
    const answers = () => inbox.filter((m) => m.type === 'task.result' || m.type === 'task.error');
    return { workerSide, managerSide, inbox, assign, answers };
  };
  return { runtime, metrics, connect, runs: manual.runs };
}

describe('WorkerRuntime', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says hello first and lists only handler capabilities', async () => {
    const { connect } = setup();
    const { inbox } = await connect(false);
    expect(inbox[0]).toMatchObject({
      type: 'hello',
      workerId: 'w1',
      workerType: 'unit',
      capabilities: ['manual'],
      maxConcurrency: 2,
      inFlight: [],
    });
  });

  describe('slot accounting', () => {
    it('refuses with busy over capacity and accepts again once a handler returns', async () => {
      const { runtime, connect, runs } = setup({ max: 2 });
      const c = await connect();
      await c.assign('a');
      await c.assign('b');
      await c.assign('c');
      expect(runtime.inFlight).toBe(2);
      expect(c.answers()).toMatchObject([{ taskId: 'c', error: { code: 'busy', retryable: true } }]);
      runs.get('a')!.finish({ output: 1 });
      await settle();
      expect(runtime.inFlight).toBe(1);
      await c.assign('d');
      expect(runtime.inFlight).toBe(2);
      expect(c.answers().map((m) => [m.taskId, m.type])).toEqual([
        ['c', 'task.error'],
        ['a', 'task.result'],
      ]);
    });

    it('a handler that ignores abort keeps its slot after the task is answered', async () => {
      const { runtime, connect, runs } = setup({ max: 1, honour: false });
      const c = await connect();
      await c.assign('a');
      await c.managerSide.send({ type: 'task.cancel', taskId: 'a' });
      await settle();
      expect(c.answers()).toMatchObject([{ taskId: 'a', error: { code: 'cancelled' } }]);
      expect(runtime.inFlight).toBe(1);
      await c.assign('b');
      expect(c.answers().at(-1)).toMatchObject({ taskId: 'b', error: { code: 'busy' } });
      runs.get('a')!.finish({ output: 'late' });
      await settle();
      expect(runtime.inFlight).toBe(0);
      // The late output is not sent: the task was already answered.
      expect(c.answers().filter((m) => m.taskId === 'a')).toHaveLength(1);
    });

    it('waitIdle resolves when the last slot frees, or false at its timeout', async () => {
      const { runtime, connect, runs } = setup();
      const c = await connect();
      await c.assign('a');
      const timedOut = runtime.waitIdle(100);
      vi.advanceTimersByTime(100);
      expect(await timedOut).toBe(false);
      const idle = runtime.waitIdle(10_000);
      runs.get('a')!.finish({ output: null });
      expect(await idle).toBe(true);
    });
  });

  describe('deadlines', () => {
    it('aborts with a timeout FleetError at timeoutMs and answers at once', async () => {
      const { runtime, connect, runs } = setup();
      const c = await connect();
      await c.assign('a', { timeoutMs: 500 });
      vi.advanceTimersByTime(499);
      await settle();
      expect(c.answers()).toHaveLength(0);
      vi.advanceTimersByTime(1);
      await settle();
      const signal = runs.get('a')!.ctx.signal;
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBeInstanceOf(FleetError);
      expect(signal.reason).toMatchObject({ code: 'timeout' });
      expect(c.answers()).toMatchObject([
        { type: 'task.error', taskId: 'a', error: { code: 'timeout', retryable: true }, durationMs: 500 },
      ]);
      expect(runtime.inFlight).toBe(0);
    });

    it('times from receipt, not from the absolute deadline (clocks of two hosts disagree)', async () => {
      const { connect, runs } = setup();
      const c = await connect();
      await c.assign('a', { timeoutMs: 1_000, deadline: Date.now() - 60_000 });
      expect(runs.get('a')!.ctx.signal.aborted).toBe(false);
      expect(runs.get('a')!.ctx.deadline).toBe(Date.now() + 1_000);
    });

    it('a timeout longer than setTimeout can hold does not fire at once', async () => {
      const { connect, runs } = setup();
      const c = await connect();
      await c.assign('a', { timeoutMs: 30 * 24 * 3600 * 1000 });
      vi.advanceTimersByTime(60_000);
      await settle();
      expect(runs.get('a')!.ctx.signal.aborted).toBe(false);
    });

    it('a result clears the deadline timer', async () => {
      const { connect, runs } = setup();
      const c = await connect();
      await c.assign('a', { timeoutMs: 100 });
      runs.get('a')!.finish({ output: 'done' });
      await settle();
      vi.advanceTimersByTime(1_000);
      await settle();
      expect(c.answers()).toMatchObject([{ type: 'task.result', output: 'done' }]);
    });
  });

  describe('cancellation', () => {
    it('task.cancel aborts the matching lease only', async () => {
      const { connect, runs } = setup();
      const c = await connect();
      await c.assign('a');
      await c.managerSide.send({ type: 'task.cancel', taskId: 'a', leaseToken: 'other' });
      await c.managerSide.send({ type: 'task.cancel', taskId: 'unknown' });
      await settle();
      expect(runs.get('a')!.ctx.signal.aborted).toBe(false);
      await c.managerSide.send({ type: 'task.cancel', taskId: 'a', reason: 'because' });
      await settle();
      expect(c.answers()).toMatchObject([
        { taskId: 'a', error: { code: 'cancelled', message: 'cancelled: because', retryable: false } },
      ]);
    });

    it('a signal first read after the cancel is already aborted, with the cancel as its reason', async () => {
      // The handler never looks at its signal while it runs (the runtime makes it only when read).
      const { connect, runs } = setup({ honour: false });
      const c = await connect();
      await c.assign('a');
      await c.assign('b');
      const early = runs.get('b')!.ctx.signal;
      const aborts: unknown[] = [];
      early.addEventListener('abort', () => aborts.push(early.reason));
      for (const taskId of ['a', 'b'])
        await c.managerSide.send({ type: 'task.cancel', taskId, reason: `stop ${taskId}` });
      await settle();
      const late = runs.get('a')!.ctx.signal;
      expect(late.aborted).toBe(true);
      expect(late.reason).toMatchObject({ code: 'cancelled', message: 'cancelled: stop a' });
      expect(runs.get('a')!.ctx.signal).toBe(late);
      expect(aborts).toHaveLength(1);
      expect(aborts[0]).toMatchObject({ code: 'cancelled', message: 'cancelled: stop b' });
      expect(
        c
          .answers()
          .map((m) => m.taskId)
          .sort(),
      ).toEqual(['a', 'b']);
    });

    it('with reconnect_grace 0, a closed connection aborts its tasks and frees their slots', async () => {
      const { runtime, connect, runs } = setup({ reconnectGrace: '0ms' });
      const c = await connect();
      await c.assign('a');
      await c.managerSide.close();
      await settle();
      expect(runs.get('a')!.ctx.signal.reason).toMatchObject({
        code: 'cancelled',
        message: 'manager connection lost',
      });
      expect(runtime.inFlight).toBe(0);
      expect(runtime.connectionCount).toBe(0);
    });

    it('a dropped connection keeps its tasks running and hands them, with held answers, to the next manager', async () => {
      const { runtime, connect, runs } = setup();
      const c1 = await connect();
      await c1.assign('a');
      await c1.assign('b');
      const leases = c1.inbox.length; // nothing answered yet
      await c1.managerSide.close();
      await settle();
      expect(runs.get('a')!.ctx.signal.aborted).toBe(false);
      expect(runs.get('b')!.ctx.signal.aborted).toBe(false);
      runs.get('a')!.finish({ output: 'done while disconnected' });
      await settle();
      expect(runtime.orphans).toEqual({ running: 1, finished: 1 });
      expect(c1.inbox).toHaveLength(leases);
      const c2 = await connect(false);
      const hello = c2.inbox[0] as Extract<WorkerToManager, { type: 'hello' }>;
      expect(hello.inFlight?.map((l) => l.taskId)).toEqual(['b']);
      expect(hello.finished?.map((l) => l.taskId)).toEqual(['a']);
      expect(hello.finished?.[0]?.leaseToken).toMatch(/^lease-a-/);
      await c2.managerSide.send({
        type: 'welcome',
        protocolVersion: PROTOCOL_VERSION,
        managerId: 'm2',
        heartbeatIntervalMs: 1_000,
      });
      await settle();
      expect(c2.answers()).toMatchObject([
        { type: 'task.result', taskId: 'a', output: 'done while disconnected' },
      ]);
      runs.get('b')!.finish({ output: 'b' });
      await settle();
      expect(c2.answers().map((m) => m.taskId)).toEqual(['a', 'b']);
      expect(runtime.orphans).toEqual({ running: 0, finished: 0 });
      expect(runtime.inFlight).toBe(0);
    });

    it('no manager within reconnect_grace: orphans are aborted and held answers dropped', async () => {
      const { runtime, connect, runs } = setup({ reconnectGrace: '1s' });
      const c1 = await connect();
      await c1.assign('a');
      await c1.assign('b');
      await c1.managerSide.close();
      await settle();
      runs.get('a')!.finish({ output: 1 });
      await settle();
      vi.advanceTimersByTime(1_000);
      await settle();
      expect(runs.get('b')!.ctx.signal.reason).toMatchObject({
        code: 'cancelled',
        message: expect.stringMatching(/no manager took the task over/),
      });
      expect(runtime.inFlight).toBe(0);
      expect(runtime.orphans).toEqual({ running: 0, finished: 0 });
      const c2 = await connect(false);
      expect(c2.inbox[0]).toMatchObject({ type: 'hello', inFlight: [] });
      expect((c2.inbox[0] as { finished?: unknown }).finished).toBeUndefined();
    });

    it('only tasks the new connection reported in its hello are handed over to it', async () => {
      const { runtime, connect, runs } = setup({ max: 3 });
      const c1 = await connect();
      await c1.assign('a');
      const c2 = await connect(false); // hello reports a
      await c1.assign('b'); // assigned by the old manager after that hello
      await c2.managerSide.send({
        type: 'welcome',
        protocolVersion: PROTOCOL_VERSION,
        managerId: 'm2',
        heartbeatIntervalMs: 1_000,
      });
      await settle();
      expect(runtime.connectionCount).toBe(1); // the previous manager's connection was closed (yield)
      runs.get('a')!.finish({ output: 'a' });
      runs.get('b')!.finish({ output: 'b' });
      await settle();
      expect(c2.answers().map((m) => m.taskId)).toEqual(['a']);
      expect(runtime.orphans).toEqual({ running: 0, finished: 1 });
    });

    it('abortAll answers every running task with the given error', async () => {
      const { runtime, connect } = setup();
      const c = await connect();
      await c.assign('a');
      await c.assign('b');
      runtime.abortAll(new FleetError('cancelled', 'the worker is stopping'));
      await settle();
      expect(c.answers().map((m) => m.type === 'task.error' && m.error.message)).toEqual([
        'the worker is stopping',
        'the worker is stopping',
      ]);
    });
  });

  describe('results and errors', () => {
    const odd: TaskHandler<{ kind: string }> = {
      capability: 'odd',
      description: 'returns odd things',
      payloadSchema: z.object({ kind: z.string() }),
      async run({ kind }) {
        if (kind === 'undefined') return undefined as unknown as TaskOutput;
        if (kind === 'bigint') return { output: { n: 1n } };
        if (kind === 'bad-artifact')
          return {
            output: 1,
            artifacts: [{ name: 'x', contentType: 'a/b', data: 'not a buffer' as unknown as Buffer }],
          };
        if (kind === 'uint8')
          return {
            output: 1,
            artifacts: [{ name: 'u', contentType: '', data: new Uint8Array([1, 2, 3]) as Buffer }],
          };
        if (kind === 'fleet') throw new FleetError('url_blocked', 'no', { details: { url: 'http://x' } });
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- the runtime must cope with non-Error throws
        throw 'a string';
      },
    };
    const cases: [string, unknown][] = [
      [
        'undefined',
        {
          type: 'task.error',
          error: { code: 'handler_error', message: expect.stringMatching(/no result object/) },
        },
      ],
      [
        'bigint',
        {
          type: 'task.error',
          error: { code: 'handler_error', message: expect.stringMatching(/not JSON-serializable/) },
        },
      ],
      [
        'bad-artifact',
        { type: 'task.error', error: { code: 'handler_error', message: expect.stringMatching(/artifact/) } },
      ],
      [
        'uint8',
        {
          type: 'task.result',
          artifacts: [
            { name: 'u', contentType: 'application/octet-stream', size: 3, encoding: 'base64', data: 'AQID' },
          ],
        },
      ],
      [
        'fleet',
        {
          type: 'task.error',
          error: { code: 'url_blocked', retryable: false, details: { url: 'http://x' } },
        },
      ],
      ['string-throw', { type: 'task.error', error: { code: 'handler_error', message: 'a string' } }],
    ];
    it.each(cases)('%s', async (kind, expected) => {
      const { connect } = setup({ handlers: [odd] });
      const c = await connect();
      await c.assign('t', { capability: 'odd', payload: { kind } });
      await settle();
      expect(c.answers()).toMatchObject([expected as object]);
    });
  });

  describe('heartbeats', () => {
    it('never beats faster than MIN_HEARTBEAT_MS, whatever the welcome asks', async () => {
      const { runtime } = setup();
      const [workerSide, managerSide] = InMemoryTransport.createLinkedPair<ManagerToWorker, WorkerToManager>(
        ManagerToWorkerSchema,
        WorkerToManagerSchema,
      );
      const beats: WorkerToManager[] = [];
      managerSide.onmessage = (m) => m.type === 'heartbeat' && beats.push(m);
      runtime.attach(workerSide);
      await managerSide.send({
        type: 'welcome',
        protocolVersion: PROTOCOL_VERSION,
        managerId: 'm',
        heartbeatIntervalMs: 1,
      });
      await settle();
      expect(beats).toHaveLength(1); // one right after welcome
      vi.advanceTimersByTime(MIN_HEARTBEAT_MS * 5);
      await settle();
      expect(beats).toHaveLength(6);
      await managerSide.close();
    });

    it('the heartbeatIntervalMs option caps a slow welcome interval', async () => {
      const { connect } = setup({ heartbeatIntervalMs: 100 });
      const c = await connect(); // welcome asks for 1000 ms
      const before = c.inbox.filter((m) => m.type === 'heartbeat').length;
      vi.advanceTimersByTime(300);
      await settle();
      expect(c.inbox.filter((m) => m.type === 'heartbeat').length - before).toBe(3);
    });

    it('a kind whose info() throws still says hello and beats', async () => {
      const { connect } = setup({
        info: () => {
          throw new Error('pool exploded');
        },
      });
      const c = await connect();
      expect(c.inbox.map((m) => m.type)).toEqual(['hello', 'heartbeat']);
    });
  });

  it('drain refuses new work with draining and tells every ready connection at once', async () => {
    const { runtime, connect, runs } = setup();
    const c = await connect();
    await c.assign('a');
    const drained = runtime.drain(10_000);
    await settle();
    expect(c.inbox.at(-1)).toMatchObject({ type: 'heartbeat', draining: true, inFlight: 1 });
    await c.assign('b');
    expect(c.answers().at(-1)).toMatchObject({ taskId: 'b', error: { code: 'draining', retryable: true } });
    runs.get('a')!.finish({ output: 'ok' });
    expect(await drained).toBe(true);
    expect(runtime.isDraining).toBe(true);
  });

  it('counts outcomes in the metrics', async () => {
    const { connect, metrics, runs } = setup({ max: 1 });
    const c = await connect();
    await c.assign('a');
    await c.assign('b');
    await c.assign('x', { capability: 'nope' });
    runs.get('a')!.finish({ output: 1 });
    await settle();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/fleet_worker_tasks_total\{capability="manual",outcome="succeeded"[^}]*\} 1/);
    expect(text).toMatch(/fleet_worker_tasks_total\{capability="manual",outcome="rejected"[^}]*\} 1/);
    expect(text).toMatch(/fleet_worker_tasks_total\{capability="\(unknown\)",outcome="rejected"[^}]*\} 1/);
  });
});
