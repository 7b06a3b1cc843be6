/**
 * Hand-written checks for the two frames every task crosses: `task.assign` (manager → worker) and
 * `task.result` (worker → manager). A frame they accept is one the zod schema accepts unchanged: only the
 * schema's own keys, each valid, no artifacts. Anything else (a rarer frame, an extra key zod would strip,
 * a value zod would refuse) goes through zod as before, which also words the error. zod's safeParse of
 * these two frames was a measurable share of a no-op task on both ends (docs/performance.md).
 */
type Frame = Record<string, unknown>;

const RESULT_KEYS = new Set(['type', 'taskId', 'attempt', 'leaseToken', 'output', 'durationMs']);
const ASSIGN_KEYS = new Set([
  'type',
  'taskId',
  'attempt',
  'leaseToken',
  'capability',
  'payload',
  'deadline',
  'timeoutMs',
  'sessionId',
]);

function onlyKeys(frame: Frame, allowed: ReadonlySet<string>): boolean {
  for (const key in frame) if (!allowed.has(key)) return false;
  return true;
}

function isString(v: unknown, min: number, max: number): v is string {
  return typeof v === 'string' && v.length >= min && v.length <= max;
}

function hasLease(frame: Frame): boolean {
  const attempt = frame['attempt'];
  return (
    isString(frame['taskId'], 1, 200) &&
    isString(frame['leaseToken'], 1, 200) &&
    Number.isSafeInteger(attempt) &&
    (attempt as number) > 0
  );
}

/** A `task.result` without artifacts whose every field is valid. */
export function isPlainTaskResult(frame: Frame): boolean {
  const duration = frame['durationMs'];
  return (
    frame['type'] === 'task.result' &&
    onlyKeys(frame, RESULT_KEYS) &&
    hasLease(frame) &&
    frame['output'] !== undefined &&
    typeof duration === 'number' &&
    Number.isFinite(duration) &&
    duration >= 0
  );
}

/** A `task.assign` whose every field is valid. */
export function isPlainTaskAssign(frame: Frame): boolean {
  const timeoutMs = frame['timeoutMs'];
  const sessionId = frame['sessionId'];
  return (
    frame['type'] === 'task.assign' &&
    onlyKeys(frame, ASSIGN_KEYS) &&
    hasLease(frame) &&
    isString(frame['capability'], 1, 100) &&
    frame['payload'] !== undefined &&
    Number.isSafeInteger(frame['deadline']) &&
    Number.isSafeInteger(timeoutMs) &&
    (timeoutMs as number) > 0 &&
    (sessionId === undefined || isString(sessionId, 1, 200))
  );
}
