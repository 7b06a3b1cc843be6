/**
 * Discovery (docs/architecture.md, "Discovery"): endpoints come from the config, from workers announcing
 * themselves, from workers Fleet spawned, and from DNS names. Every round the manager dials each endpoint
 * nobody owns (the directory's ownership lease makes this safe with several managers), renews the leases it
 * holds and publishes the state of its workers, so any manager can show the whole fleet.
 *
 * The seam: discovery owns endpoints (where workers are, who holds each lease, when to try again); it hands
 * every handshaken connection to the registry and the dispatcher and learns about the connections only through
 * `dispatcher.isConnected`/`connection`. It dials through the WebSocketWorkerInterface it is given, so the same
 * code runs over real sockets and over the in-memory mock.
 */
import { lookup } from 'node:dns/promises';
import type { Logger } from 'pino';
import type { FleetConfig } from '../../config/schema.js';
import type { CapabilityDescriptor } from '../../protocol/messages.js';
import { FleetError } from '../../protocol/errors.js';
import { CLOSE_CODES } from '../../protocol/transport.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { WebSocketWorkerInterface, WorkerConnection } from '../connect/worker-interface.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { OperatorEvent } from '../operator-events.js';
import type { WorkerDirectory } from '../registry/worker-directory.js';
import { viewOf, type WorkerRegistry } from '../registry/worker-registry.js';
import { normalizeEndpoint } from './endpoint.js';

export { normalizeEndpoint } from './endpoint.js';

export type ConnectingInterface = WebSocketWorkerInterface & {
  connect(endpoint: string): Promise<WorkerConnection>;
};

export interface RegisterWorkerConfig {
  endpoint: string;
  workerType?: string;
  source?: 'config' | 'announce' | 'spawned' | 'dns' | 'api';
}

/** What discovery needs from the manager that owns it. */
export interface DiscoveryDeps {
  id: string;
  config: FleetConfig;
  clock: Clock;
  logger: Logger;
  directory: WorkerDirectory;
  registry: WorkerRegistry;
  dispatcher: Dispatcher;
  workerInterface: ConnectingInterface;
  publishEvent: (event: OperatorEvent) => void;
  /**
   * Takes a handshaken worker's self-descriptions into the capability catalog (before it is registered) and
   * answers the capabilities it may be routed; a refused description keeps its capability off this worker.
   */
  admitCapabilities?: (endpoint: string, connection: WorkerConnection) => Promise<string[]>;
  /** After a worker registered: the catalog may have changed (a worker back under the same id is an update). */
  registered?: () => void;
  /** The capability descriptions to publish with a worker's record (the catalog's, issue 18). */
  describesOf?: (workerId: string) => { describes: CapabilityDescriptor[]; key: string } | undefined;
  /** After each round's publish: the manager reads the fleet's records back (the fleet-wide catalog). */
  afterRound?: () => Promise<void>;
}

/** How long an announced endpoint may stay unreachable before it is forgotten. */
const ANNOUNCE_TTL_MS = 60_000;

export class WorkerDiscovery {
  private readonly id: string;
  private readonly config: FleetConfig;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly directory: WorkerDirectory;
  private readonly registry: WorkerRegistry;
  private readonly dispatcher: Dispatcher;
  private readonly workerInterface: ConnectingInterface;
  private readonly endpointWorker = new Map<string, string>();
  /** Endpoints whose peer claimed the id of a worker already connected elsewhere: not re-dialed while it is. */
  private readonly aliases = new Map<string, string>();
  private readonly dialing = new Set<string>();
  private readonly backoff = new Map<string, { until: number; delay: number; failingSince: number }>();
  private readonly endpointSource = new Map<string, RegisterWorkerConfig['source']>();
  private dnsEndpoints: string[] = [];
  private lastDns = 0;
  private discoveryTimer: TimerHandle | undefined;
  private discovering = false;
  private started = false;

  constructor(private readonly deps: DiscoveryDeps) {
    this.id = deps.id;
    this.config = deps.config;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.directory = deps.directory;
    this.registry = deps.registry;
    this.dispatcher = deps.dispatcher;
    this.workerInterface = deps.workerInterface;
  }

  /** Adds the configured endpoints, then runs a round now and one every heartbeat interval. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const endpoint of this.config.manager.workers) {
      await this.addEndpoint({ endpoint, source: 'config' });
    }
    this.discoveryTimer = this.clock.setInterval(
      () => void this.discover(),
      this.config.manager.health.heartbeat_interval,
    );
    await this.discover();
  }

  /** Stops the rounds; `releaseAll` then gives the leases back. */
  stop(): void {
    this.started = false;
    this.discoveryTimer?.cancel();
  }

  /** Releases every lease this manager holds and closes the connections made through them. */
  async releaseAll(): Promise<void> {
    for (const [endpoint, workerId] of this.endpointWorker) {
      await this.directory.release(endpoint, this.id).catch(() => undefined);
      await this.dispatcher
        .connection(workerId)
        ?.close(1001, 'manager stopping')
        .catch(() => undefined);
    }
  }

  private publishEvent(event: OperatorEvent): void {
    this.deps.publishEvent(event);
  }

  /** Adds a worker endpoint and dials it now. Resolves with the worker id once connected. */
  async registerWorker(
    config: RegisterWorkerConfig,
  ): Promise<{ endpoint: string; workerId?: string; error?: string; code?: string }> {
    const endpoint = await this.addEndpoint(config);
    const existing = this.endpointWorker.get(endpoint);
    if (existing && this.dispatcher.isConnected(existing)) return { endpoint, workerId: existing };
    const alias = this.aliases.get(endpoint);
    if (alias && this.dispatcher.isConnected(alias)) {
      return {
        endpoint,
        workerId: alias,
        code: 'duplicate_worker',
        error: `the peer at ${endpoint} is worker "${alias}", already connected through another endpoint`,
      };
    }
    try {
      const workerId = await this.dial(endpoint);
      return { endpoint, ...(workerId ? { workerId } : {}) };
    } catch (err) {
      const code = err instanceof FleetError ? err.code : undefined;
      return { endpoint, error: (err as Error).message, ...(code ? { code } : {}) };
    }
  }

  /** Forgets an endpoint (a supervised worker that was scaled down). */
  async removeEndpoint(endpoint: string): Promise<void> {
    const normalized = normalizeEndpoint(endpoint);
    await this.directory.removeEndpoint(normalized);
    this.endpointSource.delete(normalized);
    this.backoff.delete(normalized);
    const workerId = this.endpointWorker.get(normalized);
    this.endpointWorker.delete(normalized);
    if (workerId) {
      await this.dispatcher.workerLost(workerId, 'endpoint removed');
      await this.registry.unregisterWorker(workerId);
      await this.directory.remove(workerId);
    }
  }

  private async addEndpoint(config: RegisterWorkerConfig): Promise<string> {
    const endpoint = normalizeEndpoint(config.endpoint);
    const source = config.source ?? 'api';
    await this.directory.addEndpoint(endpoint, {
      ...(config.workerType ? { workerType: config.workerType } : {}),
      source,
    });
    // Config and spawned endpoints are permanent; an announcement only refreshes a transient one.
    const previous = this.endpointSource.get(endpoint);
    if (!previous || previous === 'announce' || previous === 'dns') this.endpointSource.set(endpoint, source);
    const b = this.backoff.get(endpoint);
    if (b && source === 'announce') b.until = 0; // a live announcement means: try now
    return endpoint;
  }

  /** One discovery round: dial unowned endpoints, renew leases, publish worker state. */
  async discover(): Promise<void> {
    if (this.discovering || !this.started) return;
    this.discovering = true;
    try {
      const now = this.clock.now();
      const leaseTtl = this.leaseTtl();
      await this.resolveDns(now);
      const endpoints = new Set([...(await this.directory.endpoints()), ...this.dnsEndpoints]);
      for (const endpoint of endpoints) {
        const workerId = this.endpointWorker.get(endpoint);
        if (workerId && this.dispatcher.isConnected(workerId)) {
          // A lease belongs to the connection made through its endpoint; a mapping left from another
          // connection must not renew (or, failing, cut) the connection the worker has now.
          if (this.dispatcher.connection(workerId)?.endpoint !== endpoint) {
            this.endpointWorker.delete(endpoint);
            continue;
          }
          if (!(await this.directory.renew(endpoint, this.id, leaseTtl))) {
            this.logger.warn({ endpoint, workerId }, 'lost the ownership lease of a worker; letting it go');
            // Another manager may own it now and adopt what the worker reports: let the leases lapse, not fail.
            await this.dispatcher.workerLost(workerId, 'ownership lease lost', { handedOff: true });
          }
          continue;
        }
        const alias = this.aliases.get(endpoint);
        if (alias && this.dispatcher.isConnected(alias)) continue;
        if (this.dialing.has(endpoint)) continue;
        const b = this.backoff.get(endpoint);
        if (b && b.until > now) continue;
        if (b && this.endpointSource.get(endpoint) === 'announce' && now - b.failingSince > ANNOUNCE_TTL_MS) {
          this.logger.info({ endpoint }, 'forgetting an announced worker that stayed unreachable');
          await this.removeEndpoint(endpoint);
          continue;
        }
        void this.dial(endpoint).catch(() => undefined);
      }
      await this.publish(leaseTtl);
      await this.deps.afterRound?.();
    } catch (err) {
      this.logger.error({ err }, 'discovery round failed');
    } finally {
      this.discovering = false;
    }
  }

  /**
   * Dials a lost worker again now, outside the rounds, when its tasks were put on hold for it: a worker that
   * is alive reconnects and reports them; a dead one refuses the dial, which ends the hold (see `dial`).
   * Only that worker's endpoint is dialed: a whole round also renews and publishes every other worker.
   */
  redial(workerId: string): void {
    // After the current turn: a hold can start inside `attach` of the worker's own new connection.
    setImmediate(() => {
      if (!this.started || this.dispatcher.isConnected(workerId)) return;
      for (const [endpoint, id] of this.endpointWorker) {
        if (id !== workerId || this.dialing.has(endpoint)) continue;
        void this.dial(endpoint).catch(() => undefined);
      }
    });
  }

  private leaseTtl(): number {
    const h = this.config.manager.health;
    return Math.max(3000, h.heartbeat_interval * h.missed_heartbeats * 3);
  }

  private async publish(ttl: number): Promise<void> {
    const now = this.clock.now();
    for (const w of this.registry.list()) {
      if (!this.dispatcher.isConnected(w.workerId)) continue;
      const v = viewOf(w, now);
      const described = this.deps.describesOf?.(w.workerId);
      await this.directory.publish(
        {
          workerId: v.workerId,
          workerType: v.workerType,
          endpoint: v.endpoint,
          port: v.port,
          status: v.status,
          capabilities: v.capabilities,
          currentLoad: v.currentLoad,
          inFlight: v.inFlight,
          maxConcurrency: v.maxConcurrency,
          lastHeartbeat: w.lastHeartbeat,
          ownerId: this.id,
          version: v.version,
          info: v.info,
          metrics: {
            taskCount: v.metrics.taskCount,
            averageResponseTime: v.metrics.averageResponseTime,
            successRate: v.metrics.successRate,
            errorCount: v.metrics.errorCount,
            cpuUsage: v.metrics.cpuUsage,
            memoryUsage: v.metrics.memoryUsage,
            diskUsage: v.metrics.diskUsage,
            uptime: v.metrics.uptime,
          },
          ...(described ? { describes: described.describes, describesKey: described.key } : {}),
        },
        ttl,
      );
    }
  }

  private async resolveDns(now: number): Promise<void> {
    if (this.config.manager.dns.length === 0 || now - this.lastDns < 10_000) return;
    this.lastDns = now;
    const found: string[] = [];
    for (const entry of this.config.manager.dns) {
      const [name, port] = entry.split(':');
      if (!name || !port) continue;
      try {
        for (const a of await lookup(name, { all: true })) {
          const host = a.family === 6 ? `[${a.address}]` : a.address;
          found.push(normalizeEndpoint(`ws://${host}:${port}/ws`));
        }
      } catch (err) {
        this.logger.debug({ err, name }, 'DNS discovery lookup failed');
      }
    }
    this.dnsEndpoints = found;
  }

  /**
   * One identity, one live connection: a second connection claiming a connected worker's id (an alias of its
   * endpoint, or a peer impersonating it) is refused before it is registered, so it never takes a task and
   * never replaces or unsettles the connection the worker has.
   */
  private async refuseDuplicate(
    endpoint: string,
    connection: WorkerConnection,
    connectedEndpoint: string,
  ): Promise<never> {
    const workerId = connection.hello.workerId;
    const error = new FleetError(
      'duplicate_worker',
      `the peer at ${endpoint} says it is worker "${workerId}", which is already connected through ${connectedEndpoint}; refused (an alias of the same endpoint, or an impostor)`,
      { details: { workerId, endpoint, connectedEndpoint } },
    );
    await connection
      .send({ type: 'error', error: error.toJSON(), inReplyTo: 'hello' })
      .catch(() => undefined);
    await connection.close(CLOSE_CODES.duplicate, 'duplicate worker id').catch(() => undefined);
    this.aliases.set(endpoint, workerId);
    if (this.endpointWorker.get(endpoint) === workerId) this.endpointWorker.delete(endpoint);
    this.publishEvent({
      type: 'alert',
      at: this.clock.now(),
      level: 'error',
      kind: 'duplicate_worker',
      key: `duplicate_worker:${endpoint}`,
      message: error.message,
      workerId,
      endpoint,
    });
    throw error;
  }

  private async dial(endpoint: string): Promise<string | undefined> {
    if (this.dialing.has(endpoint)) return undefined;
    this.dialing.add(endpoint);
    try {
      // Another manager holds this worker; it stays theirs until their lease lapses.
      if (!(await this.directory.acquire(endpoint, this.id, this.leaseTtl()))) return undefined;
      const connection = await this.workerInterface.connect(endpoint);
      const hello = connection.hello;
      const current = this.dispatcher.connection(hello.workerId);
      if (current && current !== connection && current.isOpen) {
        await this.refuseDuplicate(endpoint, connection, current.endpoint);
      }
      this.aliases.delete(endpoint);
      const port = Number(new URL(endpoint).port) || 80;
      const capabilities = this.deps.admitCapabilities
        ? await this.deps.admitCapabilities(endpoint, connection)
        : hello.capabilities;
      const worker = await this.registry.registerWorker({
        workerId: hello.workerId,
        workerType: hello.workerType,
        endpoint,
        port,
        capabilities,
        maxConcurrency: hello.maxConcurrency,
        version: hello.version,
        info: hello.info && this.dispatcher.withinOutputLimits(hello.workerId, hello.info) ? hello.info : {},
        ownerId: this.id,
      });
      const previousId = this.endpointWorker.get(endpoint);
      if (previousId && previousId !== hello.workerId && !this.dispatcher.isConnected(previousId)) {
        // A restarted process announces a new id on the same endpoint; the old record describes a dead process.
        await this.registry.unregisterWorker(previousId);
        await this.directory.remove(previousId).catch(() => undefined);
      }
      this.endpointWorker.set(endpoint, hello.workerId);
      this.deps.registered?.();
      this.backoff.delete(endpoint);
      this.dispatcher.attach(worker, connection);
      this.logger.info(
        { workerId: hello.workerId, workerType: hello.workerType, endpoint },
        'worker connected',
      );
      return hello.workerId;
    } catch (err) {
      const now = this.clock.now();
      const prev = this.backoff.get(endpoint);
      const delay = Math.min(10_000, prev ? prev.delay * 2 : 250);
      this.backoff.set(endpoint, { until: now + delay, delay, failingSince: prev?.failingSince ?? now });
      await this.directory.release(endpoint, this.id).catch(() => undefined);
      // The worker last seen here is not coming back through this dial: its held tasks are re-queued now.
      const lostId = this.endpointWorker.get(endpoint);
      if (lostId && !this.dispatcher.isConnected(lostId))
        void this.dispatcher.releaseHeld(lostId, 'a dial of it failed');
      const e = err as FleetError;
      const level =
        e.code === 'unauthorized' || e.code === 'protocol_mismatch' || e.code === 'duplicate_worker'
          ? 'error'
          : 'debug';
      this.logger[level](
        { endpoint, code: e.code, retryInMs: delay },
        `cannot connect to worker: ${e.message}`,
      );
      throw err;
    } finally {
      this.dialing.delete(endpoint);
    }
  }
}
