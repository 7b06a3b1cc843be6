/**
 * Load balancing (docs/architecture.md: load balancing), in the Moleculer shape: a strategy is a small object with one `select` over a
 * snapshot of candidates, pure apart from its own rotation state, so each one is tested with plain arrays.
 * The manager builds the snapshot from its registry (in-flight counts are the manager's own, not the
 * worker's last heartbeat, so two dispatches in one tick cannot both see the same free slot).
 */
import type { WorkerStatus } from '../registry/worker-info.js';

/** A candidate's status is the registry's: online, offline, busy or error. */
export type CandidateStatus = WorkerStatus;

export interface Candidate {
  workerId: string;
  workerType: string;
  status: CandidateStatus;
  capabilities: readonly string[];
  inFlight: number;
  maxConcurrency: number;
  /** Smoothed task latency, when the manager has measured some. */
  ewmaLatencyMs?: number;
}

export interface BalancingTask {
  capability: string;
  sessionId?: string;
  /**
   * The worker holding the task's session (the store's session table): the task goes there or waits for it.
   * Unset for a task without a session and for the first task of one, which any worker may take.
   */
  sessionWorker?: string;
}

export interface BalancingStrategy {
  readonly name: string;
  /** Picks one of `candidates` (already filtered to fit the task), or undefined when the list is empty. */
  select(candidates: readonly Candidate[], task: BalancingTask): Candidate | undefined;
}

export function filterByCapability(candidates: readonly Candidate[], capability: string): Candidate[] {
  return candidates.filter((c) => c.capabilities.includes(capability));
}

export function hasFreeSlot(c: Candidate): boolean {
  return c.inFlight < c.maxConcurrency;
}

/** Candidates in `status` (online by default) that can take one more task now. */
export function filterByStatus(
  candidates: readonly Candidate[],
  status: CandidateStatus = 'online',
): Candidate[] {
  return candidates.filter((c) => c.status === status && hasFreeSlot(c));
}

/** In-flight over capacity; a worker that declares no capacity counts as full. */
export function loadOf(c: Candidate): number {
  return c.maxConcurrency > 0 ? c.inFlight / c.maxConcurrency : Number.POSITIVE_INFINITY;
}

/** Negative when `a` is less loaded than `b`: lower load, then fewer tasks in flight. */
export function compareLoad(a: Candidate, b: Candidate): number {
  return loadOf(a) - loadOf(b) || a.inFlight - b.inFlight;
}
