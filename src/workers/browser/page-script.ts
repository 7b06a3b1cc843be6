/**
 * Caller scripts run inside the page only (Playwright sends them to the renderer as a string), never in the
 * worker's Node process. A function expression is called with `arg`; any other expression is evaluated as is.
 * Results come back as JSON, capped in size.
 */
import { FleetError } from '../../protocol/errors.js';
import type { PageSession } from './page-session.js';

const FUNCTION_RE = /^\s*(async\s+)?(function\b|\([^()]*\)\s*=>|[\w$]+\s*=>)/;

/** True when the script is a function expression (`() => ...`, `async (x) => ...`, `function () {...}`). */
export function isFunctionScript(script: string): boolean {
  return FUNCTION_RE.test(script);
}

export async function runPageScript(session: PageSession, script: string, arg?: unknown): Promise<unknown> {
  let result: unknown;
  try {
    // Statements and expressions go as they are; a function is called (with `arg`, as JSON).
    const source = isFunctionScript(script)
      ? `(${script})(${arg === undefined ? '' : JSON.stringify(arg)})`
      : script;
    result = await session.page.evaluate(source);
  } catch (err) {
    throw session.scriptError(err);
  }
  session.throwIfViolated();
  return capJson(result, session.deps.limits.max_output_bytes, 'script result');
}

/** Returns the value if its JSON fits in `max` bytes; `payload_too_large` otherwise. */
export function capJson<T>(value: T, max: number, what: string): T {
  if (value === undefined) return value;
  const size = Buffer.byteLength(JSON.stringify(value) ?? '');
  if (size > max)
    throw new FleetError('payload_too_large', `${what} is ${size} bytes, over the ${max}-byte cap`);
  return value;
}
