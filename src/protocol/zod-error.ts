/**
 * The one way a zod validation failure becomes a FleetError: the first issue named in the message (where, then
 * what), `details.path` its JSON path, the first few in `details.issues` for a caller that wants them all. Used wherever input is checked
 * against a schema at an edge: API queries and bodies, submissions, dashboard filters, task payloads on workers.
 */
import type { z } from 'zod';
import { FleetError, type ErrorCode } from './errors.js';

const MAX_ISSUES = 5;

/** `subject` leads the message, e.g. `invalid task:` → "invalid task: payload.x: Expected number". */
export function zodToFleetError(error: z.ZodError, code: ErrorCode, subject: string): FleetError {
  const issues = error.issues
    .slice(0, MAX_ISSUES)
    .map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  const first = issues[0];
  return new FleetError(code, `${subject} ${first?.path || '(root)'}: ${first?.message ?? 'invalid'}`, {
    // `path` names the first refused field for clients that show one (the Python client's FleetError.path).
    details: { path: first?.path || '(root)', issues },
  });
}
