/**
 * The API's tokens. With `manager.token` set, every /api call needs `Authorization: Bearer <token>` (or
 * `?token=` where a header cannot be sent: browsers' WebSockets). `manager.read_token`, when set, is accepted
 * for reads only (GET and the event stream), so a wall-mounted dashboard can watch without being able to act.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { FleetError } from '../../protocol/errors.js';

/** The tokens a server checks; absent `token` means an open API. */
export interface AuthOptions {
  token?: string;
  readToken?: string;
}

export type Access = 'read' | 'write';

function tokenMatches(given: string | undefined, expected: string | undefined): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function presentedToken(req: {
  headers: IncomingMessage['headers'];
  url?: string | undefined;
}): string | undefined {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7).trim();
  const url = new URL(req.url ?? '/', 'http://x');
  return url.searchParams.get('token') ?? undefined;
}

export function authorize(
  options: AuthOptions,
  req: { headers: IncomingMessage['headers']; url?: string | undefined },
  access: Access,
): void {
  if (!options.token) return;
  const given = presentedToken(req);
  if (tokenMatches(given, options.token)) return;
  if (access === 'read' && tokenMatches(given, options.readToken)) return;
  if (given && access === 'write' && tokenMatches(given, options.readToken)) {
    throw new FleetError('unauthorized', 'this token may only read; actions need the operator token');
  }
  throw new FleetError(
    'unauthorized',
    given ? 'wrong token' : 'this manager requires a token (Authorization: Bearer <token>)',
  );
}
