/**
 * `echo`: the built-in diagnostic worker kind. No dependencies, deterministic, fast: tests, benchmarks and
 * deployment smoke checks use it to exercise the whole path (manager → queue → dispatch → worker → result)
 * without Python, Chromium or Figma.
 */
import type { WorkerSectionConfig } from '../../config/schema.js';
import type { WorkerKind } from '../common/worker-kind.js';
import { crashHandler } from './handlers/crash.js';
import { echoHandler } from './handlers/echo.js';
import { failHandler } from './handlers/fail.js';
import { sleepHandler } from './handlers/sleep.js';

export const ECHO_WORKER_TYPE = 'echo';
export const ECHO_VERSION = '0.1.0';

export function createEchoKind(config: WorkerSectionConfig): WorkerKind {
  return {
    type: ECHO_WORKER_TYPE,
    version: ECHO_VERSION,
    handlers: [echoHandler, sleepHandler, failHandler, crashHandler],
    info: () => ({ pid: process.pid, name: config.name }),
  };
}
