import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';

export const SleepPayloadSchema = z.object({
  ms: z
    .number()
    .int()
    .nonnegative()
    .max(24 * 3600 * 1000),
  /** Report percent every this many ms (default: no progress). */
  progressEvery: z.number().int().positive().optional(),
});
export type SleepPayload = z.infer<typeof SleepPayloadSchema>;

export const SleepResultSchema = z.object({ sleptMs: z.number().describe('how long it really slept') });

export const sleepHandler: TaskHandler<SleepPayload, z.infer<typeof SleepResultSchema>> = {
  capability: 'sleep',
  description:
    'Waits `ms` milliseconds, honouring cancellation, optionally reporting percent every `progressEvery` ms.',
  payloadSchema: SleepPayloadSchema,
  resultSchema: SleepResultSchema,
  idempotent: true,
  readOnly: true,
  async run({ ms, progressEvery }, ctx) {
    const started = Date.now();
    const step = progressEvery ?? ms;
    try {
      for (let elapsed = 0; elapsed < ms; elapsed = Date.now() - started) {
        await delay(Math.min(step, ms - elapsed), undefined, { signal: ctx.signal });
        if (progressEvery) {
          const done = Math.min(ms, Date.now() - started);
          ctx.progress({ percent: ms === 0 ? 100 : (done / ms) * 100, message: `slept ${done} of ${ms} ms` });
        }
      }
    } catch (err) {
      // The abort reason is already the FleetError (timeout or cancelled) the runtime answered with.
      if (ctx.signal.aborted) throw ctx.signal.reason instanceof FleetError ? ctx.signal.reason : err;
      throw err;
    }
    return { output: { sleptMs: Date.now() - started } };
  },
};
