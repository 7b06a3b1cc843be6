/**
 * `echo`: the built-in diagnostic worker kind. No dependencies, deterministic, fast: tests, benchmarks and
 * deployment smoke checks use it to exercise the whole path (manager → queue → dispatch → worker → result)
 * without Python, Chromium or Figma.
 */
import { appendFileSync } from 'node:fs';
import type { WorkerSectionConfig } from '../../config/schema.js';
import type { TaskHandler, WorkerKind } from '../common/worker-kind.js';
import { crashHandler } from './handlers/crash.js';
import { echoHandler } from './handlers/echo.js';
import { failHandler } from './handlers/fail.js';
import { sleepHandler } from './handlers/sleep.js';

export const ECHO_WORKER_TYPE = 'echo';
export const ECHO_VERSION = '0.1.0';

export function createEchoKind(
  config: WorkerSectionConfig,
  executionLog = process.env.FLEET_ECHO_EXECUTION_LOG,
): WorkerKind {
  const handlers = [echoHandler, sleepHandler, failHandler, crashHandler] as TaskHandler<unknown>[];
  return {
    type: ECHO_WORKER_TYPE,
    version: ECHO_VERSION,
    handlers: executionLog ? handlers.map((h) => counting(h, executionLog)) : handlers,
    info: () => ({ pid: process.pid, name: config.name }),
  };
}

/**
 * With FLEET_ECHO_EXECUTION_LOG set, every handler run appends `<taskId> <attempt> <pid>` to that file
 * before it starts: the chaos tests count executions on the worker side, per task, across processes (small
 * O_APPEND writes from several processes do not interleave).
 */
function counting(handler: TaskHandler<unknown>, file: string): TaskHandler<unknown> {
  return {
    ...handler,
    run(payload, ctx) {
      appendFileSync(file, `${ctx.taskId} ${ctx.attempt} ${process.pid}\n`);
      return handler.run(payload, ctx);
    },
  };
}
