/**
 * A worker's proof that it holds the fleet token. The manager dials; the token in the upgrade request proves
 * the manager to the worker, but nothing proved the worker to the manager, so any peer at a registered
 * endpoint could claim any worker id. The manager sends a fresh nonce with each dial and the worker answers
 * with an HMAC of it and its id: a peer without the token cannot compute it, and a proof captured on one
 * connection is worthless on the next.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

export function workerProof(token: string, nonce: string, workerId: string): string {
  return createHmac('sha256', token).update(`${nonce}\n${workerId}`).digest('hex');
}

export function proofMatches(
  token: string,
  nonce: string,
  workerId: string,
  given: string | undefined,
): boolean {
  if (!given) return false;
  const expected = Buffer.from(workerProof(token, nonce, workerId));
  const actual = Buffer.from(given);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
