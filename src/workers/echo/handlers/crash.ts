import { z } from 'zod';
import type { TaskHandler } from '../../common/worker-kind.js';

const SIGNALS = ['SIGKILL', 'SIGTERM', 'SIGSEGV', 'SIGABRT'] as const;

export const CrashPayloadSchema = z
  .object({
    /** Kill the process with this signal (default SIGKILL: no cleanup, like an OOM kill). */
    signal: z.enum(SIGNALS).optional(),
    /** Exit with this code instead of a signal. */
    exitCode: z.number().int().min(0).max(255).optional(),
  })
  .refine((p) => p.signal === undefined || p.exitCode === undefined, {
    message: 'give signal or exitCode, not both',
  });
export type CrashPayload = z.infer<typeof CrashPayloadSchema>;

/**
 * Kills its own worker process, mid-task, for failover tests: the manager must notice the dead socket and
 * re-queue the task at once. Never run it against a worker sharing a process with anything you care about.
 */
export const crashHandler: TaskHandler<CrashPayload, never> = {
  capability: 'crash',
  description: 'Kills this worker process at once (signal or exit code), to test failover. Diagnostic only.',
  payloadSchema: CrashPayloadSchema,
  // It never returns: the process dies under the task.
  resultSchema: z.never(),
  run({ signal, exitCode }, ctx) {
    ctx.logger.warn({ signal, exitCode }, 'crash requested: killing this worker process');
    if (exitCode !== undefined) process.exit(exitCode);
    process.kill(process.pid, signal ?? 'SIGKILL');
    // A handled signal (SIGTERM under runWorker) does not end the process at once; the task stays pending
    // until the drain or stop that the signal starts aborts it.
    return new Promise(() => undefined);
  },
};
