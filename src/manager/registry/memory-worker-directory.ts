import type { WorkerDirectory, WorkerRecord } from './worker-directory.js';

interface Lease {
  owner: string;
  expiresAt: number;
}

/** The embedded-mode directory: one manager, one process, expiry by clock. */
export class MemoryWorkerDirectory implements WorkerDirectory {
  private readonly endpointSet = new Map<string, { workerType?: string; source?: string }>();
  private readonly leases = new Map<string, Lease>();
  private readonly records = new Map<string, { record: WorkerRecord; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  async addEndpoint(endpoint: string, meta: { workerType?: string; source?: string } = {}): Promise<void> {
    this.endpointSet.set(endpoint, { ...this.endpointSet.get(endpoint), ...meta });
  }

  async removeEndpoint(endpoint: string): Promise<void> {
    this.endpointSet.delete(endpoint);
    this.leases.delete(endpoint);
  }

  async endpoints(): Promise<string[]> {
    return [...this.endpointSet.keys()];
  }

  async acquire(endpoint: string, managerId: string, ttlMs: number): Promise<boolean> {
    const lease = this.leases.get(endpoint);
    if (lease && lease.owner !== managerId && lease.expiresAt > this.now()) return false;
    this.leases.set(endpoint, { owner: managerId, expiresAt: this.now() + ttlMs });
    return true;
  }

  async renew(endpoint: string, managerId: string, ttlMs: number): Promise<boolean> {
    const lease = this.leases.get(endpoint);
    if (!lease || lease.owner !== managerId) return false;
    lease.expiresAt = this.now() + ttlMs;
    return true;
  }

  async release(endpoint: string, managerId: string): Promise<void> {
    if (this.leases.get(endpoint)?.owner === managerId) this.leases.delete(endpoint);
  }

  async ownerOf(endpoint: string): Promise<string | undefined> {
    const lease = this.leases.get(endpoint);
    return lease && lease.expiresAt > this.now() ? lease.owner : undefined;
  }

  async publish(record: WorkerRecord, ttlMs: number): Promise<void> {
    this.records.set(record.workerId, { record: { ...record }, expiresAt: this.now() + ttlMs });
  }

  async remove(workerId: string): Promise<void> {
    this.records.delete(workerId);
  }

  async list(): Promise<WorkerRecord[]> {
    const now = this.now();
    const out: WorkerRecord[] = [];
    for (const [id, entry] of this.records) {
      if (entry.expiresAt <= now) this.records.delete(id);
      else out.push({ ...entry.record });
    }
    return out;
  }

  async close(): Promise<void> {}
}
