/**
 * `fleet/client`: what another project imports to use a Fleet manager (`import { FleetClient } from
 * 'fleet/client'`). Only the client and the error table: nothing here pulls the manager or the workers in.
 */
export {
  FleetClient,
  type ClientTask,
  type ClientWorker,
  type FleetClientOptions,
  type SubmitOptions,
} from './fleet-client.js';
export {
  ERROR_CODES,
  FleetError,
  isErrorCode,
  type ErrorCode,
  type FleetErrorShape,
} from '../protocol/errors.js';
