/**
 * Small worker kinds for runtime tests: handlers that misbehave in controlled ways (ignore their signal,
 * flood progress, return huge outputs) which the echo kind deliberately does not offer.
 */
import { z } from 'zod';
import type { TaskContext, TaskHandler, WorkerKind } from '../../../../src/workers/common/worker-kind.js';

export interface Gate {
  wait(): Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let release!: () => void;
  const opened = new Promise<void>((resolve) => (release = resolve));
  return { wait: () => opened, open: () => release() };
}

export interface TestKindState {
  /** Released for every `stubborn` task; the handler ignores its AbortSignal until then. */
  stubbornGate: Gate;
  /** Signals seen by `watch` tasks, by task id. */
  signals: Map<string, AbortSignal>;
  started: number;
  stopped: number;
  ready: boolean;
}

export function createTestKind(state: TestKindState): WorkerKind {
  const stubborn: TaskHandler<Record<string, never>> = {
    capability: 'stubborn',
    description: 'Ignores its AbortSignal until the test opens the gate.',
    payloadSchema: z.object({}).strict(),
    async run() {
      await state.stubbornGate.wait();
      return { output: 'finally' };
    },
  };
  const watch: TaskHandler<unknown> = {
    capability: 'watch',
    description: 'Waits for its signal and records it.',
    payloadSchema: z.unknown(),
    run(_payload, ctx: TaskContext) {
      state.signals.set(ctx.taskId, ctx.signal);
      return new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
      });
    },
  };
  const flood: TaskHandler<{ lines: number; width?: number }> = {
    capability: 'flood',
    description: 'Prints many lines as fast as it can.',
    payloadSchema: z.object({
      lines: z.number().int().positive(),
      width: z.number().int().positive().optional(),
    }),
    async run({ lines, width = 10 }, ctx) {
      for (let i = 0; i < lines; i++)
        ctx.progress({ log: { stream: i % 2 ? 'stderr' : 'stdout', data: `${'x'.repeat(width)}\n` } });
      return { output: { printed: lines } };
    },
  };
  const big: TaskHandler<{ bytes: number }> = {
    capability: 'big',
    description: 'Returns an output string of the given size.',
    payloadSchema: z.object({ bytes: z.number().int().nonnegative() }),
    async run({ bytes }) {
      return { output: 'y'.repeat(bytes) };
    },
  };
  const throws: TaskHandler<unknown> = {
    capability: 'throws',
    description: 'Throws a plain Error synchronously.',
    payloadSchema: z.unknown(),
    run() {
      throw new Error('plain failure with a secret stack');
    },
  };
  return {
    type: 'test-kind',
    version: '9.9.9',
    handlers: [stubborn, watch, flood, big, throws],
    async start() {
      state.started++;
    },
    async stop() {
      state.stopped++;
    },
    ready: () => state.ready,
    info: () => ({ pool: 'fine' }),
  };
}

export function newTestKindState(): TestKindState {
  return { stubbornGate: gate(), signals: new Map(), started: 0, stopped: 0, ready: true };
}

/** Polls `check` until it is true (or throws after `timeoutMs`). */
export async function until(check: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
