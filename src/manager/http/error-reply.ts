/**
 * How the API answers an error: `{ error: { code, message, retryable, details? } }` with the code's HTTP
 * status. One function for fastify's error handler and for the lean submit route (submit-route.ts), so both
 * paths word and number an error the same way.
 */
import { ERROR_CODES, FleetError, toFleetError, type FleetErrorShape } from '../../protocol/errors.js';

export interface ErrorReply {
  status: number;
  body: { error: FleetErrorShape };
}

/** A thrown error as the API answers it; fastify's own body-parsing errors become their Fleet codes. */
export function errorReply(err: unknown): ErrorReply {
  const e = err as { code?: string; statusCode?: number; message?: string };
  let fleet: FleetError;
  if (err instanceof FleetError) fleet = err;
  else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    fleet = new FleetError('payload_too_large', 'request body is over the limit');
  else if (
    e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
    e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    e.statusCode === 400
  ) {
    fleet = new FleetError('invalid_task', e.message ?? 'bad request');
  } else fleet = toFleetError(err);
  return { status: ERROR_CODES[fleet.code].http, body: { error: fleet.toJSON() } };
}
