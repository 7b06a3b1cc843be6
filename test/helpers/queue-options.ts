import type { TaskQueueOptions } from '../../src/manager/queue/task-queue.js';

/** Queue options for tests: small bounds, tiny backoffs so retries come due fast, overridable per test. */
export function testQueueOptions(overrides: Partial<TaskQueueOptions> = {}): TaskQueueOptions {
  return {
    maxQueued: 1000,
    retainFinished: 1000,
    defaultMaxAttempts: 3,
    timeoutMs: () => 30_000,
    backoffMs: 20,
    maxBackoffMs: 40,
    ...overrides,
  };
}
