/**
 * Worker records read back from a shared directory (Redis), checked rather than cast, for the reasons in
 * queue/stored-record.ts. A record that fails is left out of the fleet view (it expires with its TTL or is
 * overwritten by its owner's next publish) instead of failing every listing.
 */
import { z } from 'zod';
import { WORKER_STATUSES } from './worker-info.js';
import type { WorkerRecord } from './worker-directory.js';

const WorkerRecordSchema = z.looseObject({
  workerId: z.string().min(1),
  workerType: z.string(),
  endpoint: z.string(),
  port: z.number(),
  status: z.enum(WORKER_STATUSES),
  capabilities: z.array(z.string()),
  currentLoad: z.number(),
  inFlight: z.number(),
  maxConcurrency: z.number(),
  lastHeartbeat: z.number(),
  ownerId: z.string().optional(),
  version: z.string().optional(),
  info: z.record(z.string(), z.unknown()).optional(),
  metrics: z.record(z.string(), z.number()).optional(),
});

const EndpointMetaSchema = z.looseObject({
  workerType: z.string().optional(),
  source: z.string().optional(),
});

function parseJson(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}

/** The record, or undefined when the stored JSON is not a worker record. */
export function parseStoredWorker(json: string): WorkerRecord | undefined {
  const r = WorkerRecordSchema.safeParse(parseJson(json));
  return r.success ? r.data : undefined;
}

/** What is known about an endpoint; a corrupt entry reads as nothing known (the endpoint itself stays). */
export function parseEndpointMeta(json: string | null | undefined): { workerType?: string; source?: string } {
  if (!json) return {};
  const r = EndpointMetaSchema.safeParse(parseJson(json));
  return r.success ? r.data : {};
}
