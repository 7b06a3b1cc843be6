/**
 * The worker directory in Redis, for distributed mode (docs/architecture.md: Discovery, Stores): every manager sees the same
 * endpoints, ownership leases and worker records.
 *
 * Expiry is Redis's own (`PX` on the keys), so a dead manager's leases and its workers' records vanish
 * without anyone cleaning up, and no manager's clock matters. Lease changes are small Lua scripts so
 * "take it if free or mine" and "extend it only if still mine" are single atomic steps.
 *
 * Keys under `<prefix>:dir:`: `endpoints` (hash endpoint → meta JSON), `lease:<endpoint>` (owner, PX ttl),
 * `worker:<id>` (record JSON, PX ttl), `workers` (set of ids, pruned when their record has expired),
 * `describes:<sha256>` (a worker's capability descriptions, PX twice the record's ttl: stored once per
 * distinct set, however many replicas and rounds, and refreshed rather than rewritten).
 */
import type { Redis } from 'ioredis';
import { FleetError } from '../../protocol/errors.js';
import { RedisConnections, RedisScript, type RedisConnectionOptions } from '../../store/redis-connection.js';
import type { WorkerDirectory, WorkerRecord } from './worker-directory.js';
import type { CapabilityDescriptor } from '../../protocol/messages.js';
import { parseEndpointMeta, parseStoredDescribes, parseStoredWorker } from './stored-worker.js';

/** Free, or already mine → take/extend it. Returns 1 when held by `ARGV[1]` afterwards. */
const ACQUIRE = new RedisScript(
  'fleet-dir-acquire',
  `
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`,
);

/** Mine → extend; expired and nobody took it → mine again; someone else's → 0. */
const RENEW = new RedisScript(
  'fleet-dir-renew',
  `
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`,
);

const RELEASE = new RedisScript(
  'fleet-dir-release',
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`,
);

const MAX_ENDPOINT = 2048;
/** Description sets kept parsed (content-addressed, so never stale); more distinct sets are read again. */
const MAX_CACHED_DESCRIBES = 200;

export interface RedisWorkerDirectoryOptions {
  /** A process's shared connections (preferred), or options to open private ones that `close()` closes. */
  redis: RedisConnections | RedisConnectionOptions;
}

export class RedisWorkerDirectory implements WorkerDirectory {
  private readonly connections: RedisConnections;
  private readonly ownsConnections: boolean;
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private closed = false;
  /** Description sets this process wrote, by key, with when (their value is re-sent once a ttl has passed). */
  private readonly written = new Map<string, number>();
  /** Description sets read back and checked, by key. */
  private readonly describesCache = new Map<string, CapabilityDescriptor[]>();

  constructor(options: RedisWorkerDirectoryOptions) {
    this.ownsConnections = !(options.redis instanceof RedisConnections);
    this.connections =
      options.redis instanceof RedisConnections ? options.redis : new RedisConnections(options.redis);
    this.redis = this.connections.get('command');
    this.keyPrefix = `${this.connections.prefix}:dir:`;
  }

  async addEndpoint(endpoint: string, meta: { workerType?: string; source?: string } = {}): Promise<void> {
    this.check(endpoint);
    const key = this.key('endpoints');
    const previous = await this.redis.hget(key, endpoint);
    const merged = { ...parseEndpointMeta(previous), ...meta };
    await this.redis.hset(key, endpoint, JSON.stringify(merged));
  }

  async removeEndpoint(endpoint: string): Promise<void> {
    this.check(endpoint);
    await this.redis.multi().hdel(this.key('endpoints'), endpoint).del(this.leaseKey(endpoint)).exec();
  }

  async endpoints(): Promise<string[]> {
    this.assertOpen();
    return this.redis.hkeys(this.key('endpoints'));
  }

  /** Endpoints with what is known about them (worker type, how it was learnt). */
  async endpointMeta(): Promise<Map<string, { workerType?: string; source?: string }>> {
    this.assertOpen();
    const all = await this.redis.hgetall(this.key('endpoints'));
    return new Map(Object.entries(all).map(([k, v]) => [k, parseEndpointMeta(v)]));
  }

  async acquire(endpoint: string, managerId: string, ttlMs: number): Promise<boolean> {
    this.check(endpoint, managerId, ttlMs);
    return (await ACQUIRE.run(this.redis, [this.leaseKey(endpoint)], [managerId, Math.ceil(ttlMs)])) === 1;
  }

  async renew(endpoint: string, managerId: string, ttlMs: number): Promise<boolean> {
    this.check(endpoint, managerId, ttlMs);
    return (await RENEW.run(this.redis, [this.leaseKey(endpoint)], [managerId, Math.ceil(ttlMs)])) === 1;
  }

  async release(endpoint: string, managerId: string): Promise<void> {
    this.check(endpoint, managerId);
    await RELEASE.run(this.redis, [this.leaseKey(endpoint)], [managerId]);
  }

  async ownerOf(endpoint: string): Promise<string | undefined> {
    this.check(endpoint);
    return (await this.redis.get(this.leaseKey(endpoint))) ?? undefined;
  }

  async publish(record: WorkerRecord, ttlMs: number): Promise<void> {
    this.check(record.endpoint, record.workerId, ttlMs);
    const { describes, describesKey, ...rest } = record;
    const key = describes && describesKey ? describesKey : undefined;
    const multi = this.redis
      .multi()
      .set(
        this.key(`worker:${record.workerId}`),
        JSON.stringify(key ? { ...rest, describesKey: key } : rest),
        'PX',
        Math.ceil(ttlMs),
      )
      .sadd(this.key('workers'), record.workerId);
    // Outlives the records pointing at it, so a reader never finds a record without its descriptions.
    const describesTtl = Math.ceil(ttlMs * 2);
    const sentAt = key ? this.written.get(key) : undefined;
    const resend = key !== undefined && (sentAt === undefined || Date.now() - sentAt > ttlMs);
    if (key && resend) multi.set(this.key(`describes:${key}`), JSON.stringify(describes), 'PX', describesTtl);
    else if (key) multi.pexpire(this.key(`describes:${key}`), describesTtl);
    const replies = await multi.exec();
    if (!key) return;
    if (resend) this.written.set(key, Date.now());
    // The key was gone (Redis restarted, or evicted it): write the value again next round.
    else if (replies?.[2]?.[1] === 0) this.written.delete(key);
    if (this.written.size > MAX_CACHED_DESCRIBES) this.written.delete(this.written.keys().next().value!);
  }

  async remove(workerId: string): Promise<void> {
    this.assertOpen();
    await this.redis
      .multi()
      .del(this.key(`worker:${workerId}`))
      .srem(this.key('workers'), workerId)
      .exec();
  }

  async list(): Promise<WorkerRecord[]> {
    this.assertOpen();
    const ids = await this.redis.smembers(this.key('workers'));
    if (ids.length === 0) return [];
    const values = await this.redis.mget(...ids.map((id) => this.key(`worker:${id}`)));
    const out: WorkerRecord[] = [];
    const expired: string[] = [];
    ids.forEach((id, i) => {
      const json = values[i];
      const record = json ? parseStoredWorker(json) : undefined;
      if (record) out.push(record);
      else if (!json) expired.push(id);
    });
    // A record that expired leaves its id behind in the set; whoever lists next tidies it.
    if (expired.length > 0) await this.redis.srem(this.key('workers'), ...expired);
    await this.attachDescribes(out);
    return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
  }

  /** Puts each record's descriptions back (read once per distinct set); a missing or corrupt set is left off. */
  private async attachDescribes(records: WorkerRecord[]): Promise<void> {
    const missing = [
      ...new Set(records.map((r) => r.describesKey).filter((k): k is string => k !== undefined)),
    ].filter((k) => /^[0-9a-f]{64}$/.test(k) && !this.describesCache.has(k));
    if (missing.length > 0) {
      const values = await this.redis.mget(...missing.map((k) => this.key(`describes:${k}`)));
      missing.forEach((k, i) => {
        const json = values[i];
        const describes = json ? parseStoredDescribes(json, k) : undefined;
        if (!describes) return;
        if (this.describesCache.size >= MAX_CACHED_DESCRIBES)
          this.describesCache.delete(this.describesCache.keys().next().value!);
        this.describesCache.set(k, describes);
      });
    }
    for (const r of records) {
      const describes = r.describesKey ? this.describesCache.get(r.describesKey) : undefined;
      // Only what was checked here: a `describes` stored inline in a record is not taken.
      if (describes) r.describes = describes;
      else delete r.describes;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsConnections) await this.connections.close();
  }

  private key(suffix: string): string {
    return `${this.keyPrefix}${suffix}`;
  }

  private leaseKey(endpoint: string): string {
    return this.key(`lease:${endpoint}`);
  }

  private check(endpoint: string, managerId?: string, ttlMs?: number): void {
    this.assertOpen();
    if (typeof endpoint !== 'string' || endpoint.length === 0 || endpoint.length > MAX_ENDPOINT) {
      throw new FleetError(
        'invalid_message',
        `worker directory: endpoint must be 1-${MAX_ENDPOINT} characters`,
      );
    }
    if (
      managerId !== undefined &&
      (typeof managerId !== 'string' || managerId.length === 0 || managerId.length > 200)
    ) {
      throw new FleetError('invalid_message', 'worker directory: id must be 1-200 characters');
    }
    if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs < 1)) {
      throw new FleetError(
        'invalid_message',
        `worker directory: ttl must be a positive number of ms, got ${ttlMs}`,
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new FleetError('conflict', 'the worker directory is closed');
  }
}
