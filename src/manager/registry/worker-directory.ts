/**
 * The fleet-wide view of workers, shared by every manager (docs/architecture.md: Discovery, Stores).
 *
 * A manager keeps live connections only to the workers it owns; the directory is how managers agree on who
 * owns what and how any of them can show the whole fleet. Ownership is a lease with a TTL renewed on every
 * heartbeat round: when a manager dies its leases expire and another manager dials the orphaned endpoints.
 * Worker records also expire, so a fleet view never shows a worker nobody has heard from.
 *
 * Memory implementation: embedded mode (one manager). Redis implementation: distributed mode.
 */
import type { CapabilityDescriptor } from '../../protocol/messages.js';
import type { WorkerInfo } from './worker-info.js';

/** The spec's WorkerInfo as stored for the whole fleet (times as epoch ms, so it survives JSON). */
export interface WorkerRecord extends Omit<WorkerInfo, 'lastHeartbeat'> {
  inFlight: number;
  maxConcurrency: number;
  lastHeartbeat: number;
  /** The manager holding the connection. */
  ownerId?: string;
  version?: string;
  info?: Record<string, unknown>;
  metrics?: Record<string, number>;
  /**
   * The worker's capability descriptions as its manager's catalog accepted them (issue 18), so every manager
   * can check payloads and list capabilities for workers it does not hold. `describesKey` is their content
   * hash: the Redis directory stores each distinct set once under it, not in every record.
   */
  describes?: CapabilityDescriptor[];
  describesKey?: string;
}

export interface WorkerDirectory {
  /** Remembers an endpoint to dial (config, self-announcement, DNS, spawned). Idempotent. */
  addEndpoint(endpoint: string, meta?: { workerType?: string; source?: string }): Promise<void>;
  removeEndpoint(endpoint: string): Promise<void>;
  endpoints(): Promise<string[]>;
  /** Takes the ownership lease of an endpoint if nobody holds it (or `managerId` already does). */
  acquire(endpoint: string, managerId: string, ttlMs: number): Promise<boolean>;
  /** Extends a lease this manager holds; false when it was lost (another manager took over). */
  renew(endpoint: string, managerId: string, ttlMs: number): Promise<boolean>;
  release(endpoint: string, managerId: string): Promise<void>;
  ownerOf(endpoint: string): Promise<string | undefined>;
  /** Publishes a worker's current state; the record expires after `ttlMs` unless published again. */
  publish(record: WorkerRecord, ttlMs: number): Promise<void>;
  remove(workerId: string): Promise<void>;
  list(): Promise<WorkerRecord[]>;
  close(): Promise<void>;
}
