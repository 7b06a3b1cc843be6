/**
 * Worker records read back from a shared directory (Redis), checked rather than cast, for the reasons in
 * queue/stored-record.ts. A record that fails is left out of the fleet view (it expires with its TTL or is
 * overwritten by its owner's next publish) instead of failing every listing.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CapabilityDescriptorSchema, type CapabilityDescriptor } from '../../protocol/messages.js';
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
  // Not held to its shape here: a bad key only loses the descriptions (attachDescribes), not the record.
  describesKey: z.string().optional(),
});

/** As a hello carries them (the same bounds). */
const StoredDescribesSchema = z.array(CapabilityDescriptorSchema).max(100);

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

/**
 * A worker's stored capability descriptions, or undefined when the text is not what was published under
 * `key` (its sha256) or not descriptions. The catalog still checks each schema as it would a hello's.
 */
export function parseStoredDescribes(json: string, key: string): CapabilityDescriptor[] | undefined {
  if (createHash('sha256').update(json).digest('hex') !== key) return undefined;
  const r = StoredDescribesSchema.safeParse(parseJson(json));
  return r.success ? r.data : undefined;
}

/** What is known about an endpoint; a corrupt entry reads as nothing known (the endpoint itself stays). */
export function parseEndpointMeta(json: string | null | undefined): { workerType?: string; source?: string } {
  if (!json) return {};
  const r = EndpointMetaSchema.safeParse(parseJson(json));
  return r.success ? r.data : {};
}
