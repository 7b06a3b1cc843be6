/**
 * The two health verdicts (docs/architecture.md: Health) as a pure state machine, so the rules can be tested with numbers.
 *
 * Liveness: any message counts as a sign of life; `missedHeartbeats` periods without one means dead.
 * Readiness: the deep `GET /health` check; `unhealthyThreshold` failures in a row means unhealthy, and the
 * first success clears it. `busy` is decided elsewhere and is neither.
 */
export interface HealthPolicy {
  heartbeatIntervalMs: number;
  missedHeartbeats: number;
  unhealthyThreshold: number;
}

export type LivenessVerdict = 'alive' | 'dead';
export type ReadinessVerdict = 'ready' | 'degraded' | 'unhealthy';

export function liveness(lastSeen: number, now: number, policy: HealthPolicy): LivenessVerdict {
  return now - lastSeen > policy.heartbeatIntervalMs * policy.missedHeartbeats ? 'dead' : 'alive';
}

export interface DeepCheckState {
  consecutiveFailures: number;
  lastSuccess: number | undefined;
}

export function afterDeepCheck(state: DeepCheckState, ok: boolean, now: number): DeepCheckState {
  return ok
    ? { consecutiveFailures: 0, lastSuccess: now }
    : { ...state, consecutiveFailures: state.consecutiveFailures + 1 };
}

export function readiness(state: DeepCheckState, policy: HealthPolicy): ReadinessVerdict {
  if (state.consecutiveFailures === 0) return 'ready';
  return state.consecutiveFailures >= policy.unhealthyThreshold ? 'unhealthy' : 'degraded';
}
