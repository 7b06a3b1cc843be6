import { z } from 'zod';
import { FleetError, isErrorCode } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';

export const FailPayloadSchema = z.object({
  code: z
    .string()
    .refine(isErrorCode, { message: 'not a Fleet error code (see docs/errors.md)' })
    .default('handler_error'),
  message: z.string().max(10_000).default('failed on purpose (echo worker "fail" capability)'),
  retryable: z.boolean().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type FailPayload = z.infer<typeof FailPayloadSchema>;

export const failHandler: TaskHandler<FailPayload, never> = {
  capability: 'fail',
  description:
    'Fails with the given error code, message and retryable flag, to exercise retry and error paths.',
  payloadSchema: FailPayloadSchema,
  // It never returns: every task ends in the error it was asked for.
  resultSchema: z.never(),
  async run({ code, message, retryable, details }) {
    if (!isErrorCode(code)) throw new FleetError('invalid_payload', `unknown error code "${code}"`);
    throw new FleetError(code, message, { retryable, details });
  },
};
