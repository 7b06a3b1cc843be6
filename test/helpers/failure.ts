import { expect } from 'vitest';
import { FleetError } from '../../src/protocol/errors.js';

/** Awaits a promise that must reject with a FleetError, and returns that error for closer checks. */
export async function failure(p: Promise<unknown>): Promise<FleetError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FleetError);
    return err as FleetError;
  }
  throw new Error('expected the call to fail with a FleetError');
}
