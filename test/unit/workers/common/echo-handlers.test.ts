import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FleetError } from '../../../../src/protocol/errors.js';
import type { TaskContext } from '../../../../src/workers/common/worker-kind.js';
import { crashHandler, CrashPayloadSchema } from '../../../../src/workers/echo/handlers/crash.js';
import { sleepHandler } from '../../../../src/workers/echo/handlers/sleep.js';
import { failHandler, FailPayloadSchema } from '../../../../src/workers/echo/handlers/fail.js';

function ctx(signal = new AbortController().signal): TaskContext & { updates: unknown[] } {
  const updates: unknown[] = [];
  return {
    taskId: 't',
    attempt: 1,
    capability: 'x',
    sessionId: undefined,
    signal,
    deadline: Date.now() + 10_000,
    progress: (u) => updates.push(u),
    logger: pino({ level: 'silent' }),
    updates,
  };
}

describe('echo handlers', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('sleep rethrows the runtime abort reason (timeout / cancelled), not a bare AbortError', async () => {
    const controller = new AbortController();
    const running = sleepHandler.run({ ms: 10_000 }, ctx(controller.signal));
    controller.abort(new FleetError('timeout', 'too slow'));
    await expect(running).rejects.toMatchObject({ code: 'timeout', message: 'too slow' });
  });

  it('sleep with ms 0 returns at once', async () => {
    const c = ctx();
    await expect(sleepHandler.run({ ms: 0, progressEvery: 10 }, c)).resolves.toMatchObject({
      output: { sleptMs: expect.any(Number) },
    });
  });

  it('fail defaults to a non-retryable handler_error', async () => {
    await expect(failHandler.run(FailPayloadSchema.parse({}), ctx())).rejects.toMatchObject({
      code: 'handler_error',
      retryable: false,
    });
  });

  it('crash kills its own process with SIGKILL by default, or exits with the given code', () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    void crashHandler.run(CrashPayloadSchema.parse({}), ctx());
    expect(kill).toHaveBeenCalledWith(process.pid, 'SIGKILL');
    void crashHandler.run(CrashPayloadSchema.parse({ signal: 'SIGTERM' }), ctx());
    expect(kill).toHaveBeenLastCalledWith(process.pid, 'SIGTERM');
    void crashHandler.run(CrashPayloadSchema.parse({ exitCode: 3 }), ctx());
    expect(exit).toHaveBeenCalledWith(3);
  });

  it('crash refuses signal and exitCode together, and unknown signals', () => {
    expect(CrashPayloadSchema.safeParse({ signal: 'SIGKILL', exitCode: 1 }).success).toBe(false);
    expect(CrashPayloadSchema.safeParse({ signal: 'SIGHUP' }).success).toBe(false);
  });
});
