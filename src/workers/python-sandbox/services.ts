/** What the handlers share: the runtime, the sessions, the limits, and the counters /metrics reads. */
import type { TaskContext } from '../common/worker-kind.js';
import { FleetError } from '../../protocol/errors.js';
import type { ResolvedLimits, SandboxOptions } from './options.js';
import type { SandboxRuntime } from './runtime.js';
import type { Session, SessionManager } from './sessions.js';

export interface SandboxServices {
  options: SandboxOptions;
  limits: ResolvedLimits;
  runtime: SandboxRuntime;
  sessions: SessionManager;
  counters: {
    executions: Map<string, number>;
    kills: Map<string, number>;
  };
}

export function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export function requireSessionId(ctx: TaskContext, capability: string): string {
  if (!ctx.sessionId) {
    throw new FleetError(
      'invalid_payload',
      `${capability} works on a session workspace: send the task with a sessionId`,
    );
  }
  return ctx.sessionId;
}

/** Runs `fn` holding the session's lock (created on first use unless `create` is false). */
export async function withSession<T>(
  services: SandboxServices,
  sessionId: string,
  opts: { create: boolean; reset?: boolean },
  fn: (session: Session) => Promise<T>,
): Promise<T> {
  services.runtime.requireChain();
  const session = await services.sessions.acquire(sessionId, opts);
  try {
    return await fn(session);
  } finally {
    services.sessions.release(session);
  }
}
