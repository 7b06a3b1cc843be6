/**
 * Chooses the manager's stores from `manager.store` (docs/architecture.md: Stores; docs/distributed.md).
 *
 * `memory` (embedded mode) needs nothing here: the manager builds its in-process queue and directory.
 * `redis` (distributed mode) opens ONE `RedisConnections` for the process and hands it to both the task queue
 * and the worker directory, so N managers on one Redis share the queue, the endpoints and the worker view.
 * The manager id is fixed here because it is also the queue's instance id and the owner name on leases.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { WORKER_DEFAULTS, type FleetConfig, type WorkerSectionKey } from '../config/schema.js';
import { FleetError } from '../protocol/errors.js';
import { RedisConnections, redactUrl, redisOptionsFromConfig } from '../store/redis-connection.js';
import { defaultQueueFor, FleetKeys } from './queue/redis/keys.js';
import { assertCurrentLayout } from './queue/redis/layout.js';
import { RedisTaskQueue } from './queue/redis/task-queue.js';
import { RedisWorkerDirectory } from './registry/redis-worker-directory.js';
import type { WorkerManagerDeps } from './manager.js';

export interface ManagerStores {
  /** What to pass to `new WorkerManager(config, deps)`; empty for the memory store. */
  deps: Pick<WorkerManagerDeps, 'queue' | 'directory'>;
  /** Closes what the factory opened (after the manager has stopped and handed its tasks back). */
  close(): Promise<void>;
}

const SECTION_KEYS = Object.keys(WORKER_DEFAULTS) as WorkerSectionKey[];

export function generateManagerId(): string {
  return `manager-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
}

/**
 * The BullMQ queue of a capability: the worker type offering it, from the config's sections, so that every
 * worker claiming from a queue serves all of its capabilities. A capability no section lists gets a queue
 * of its own.
 */
export function queueForFromConfig(config: FleetConfig): (capability: string) => string {
  const byCapability = new Map<string, string>();
  for (const key of SECTION_KEYS) {
    const section = config[key];
    const queue = section.name.replace(/[^A-Za-z0-9._-]/g, '_');
    for (const capability of section.capabilities) {
      if (!byCapability.has(capability)) byCapability.set(capability, queue);
    }
  }
  return (capability) => byCapability.get(capability) ?? defaultQueueFor(capability);
}

/**
 * Opens the stores `manager.store` asks for, for the manager `config.manager.id` (set it: the queue's
 * instance id must be the manager's id); with Redis, fails with a clear FleetError when it is unreachable. */
export async function createManagerStores(
  config: FleetConfig,
  options: { logger?: Logger; pingTimeoutMs?: number } = {},
): Promise<ManagerStores> {
  const id = config.manager.id ?? generateManagerId();
  const withId: FleetConfig = { ...config, manager: { ...config.manager, id } };
  const m = withId.manager;
  if (m.store !== 'redis') return { deps: {}, close: async () => {} };

  const connections = new RedisConnections({
    ...redisOptionsFromConfig(m.redis),
    clientName: `fleet-${id}`.slice(0, 100).replace(/[^A-Za-z0-9._:-]/g, '_'),
  });
  // Reconnects are automatic; log the failure once per burst rather than on every retry.
  let lastLogged = 0;
  connections.onError((role, err) => {
    const now = Date.now();
    if (now - lastLogged < 5_000) return;
    lastLogged = now;
    options.logger?.warn({ role, err: err.message }, 'Redis connection error (reconnecting)');
  });
  try {
    await connections.ping(options.pingTimeoutMs ?? 5_000);
  } catch (err) {
    dropConnections(connections);
    throw new FleetError(
      'config_invalid',
      `manager.store is redis but Redis at ${redactUrl(m.redis.url)} does not answer (${(err as Error).message}); ` +
        'start Redis, or fix manager.redis.url / FLEET_REDIS_URL',
      { cause: err },
    );
  }

  try {
    // A Redis holding the previous layout's task records: refuse to start rather than ignore those tasks.
    await assertCurrentLayout(connections.get('command'), new FleetKeys(connections.prefix));
  } catch (err) {
    dropConnections(connections);
    throw err;
  }

  const timeoutOf = (capability: string): number => {
    for (const key of SECTION_KEYS) {
      if (withId[key].capabilities.includes(capability)) return withId[key].timeout;
    }
    return withId.python_sandbox.timeout;
  };
  const queue = new RedisTaskQueue({
    redis: connections,
    queueFor: queueForFromConfig(withId),
    lockDurationMs: m.redis.lock_duration,
    instanceId: id,
    maxQueued: m.queue.max_size,
    retainFinished: m.queue.retain_finished,
    defaultMaxAttempts: m.retries.max_attempts,
    timeoutMs: timeoutOf,
    backoffMs: m.retries.backoff,
    maxBackoffMs: m.retries.max_backoff,
    onBackgroundError: (err) =>
      options.logger?.warn({ err: err.message }, 'Redis task queue background work failed'),
  });
  const directory = new RedisWorkerDirectory({ redis: connections });
  return {
    deps: { queue, directory },
    async close() {
      // The manager closed the queue (handing its tasks back) and the directory; the sockets are ours.
      await queue.close().catch(() => undefined);
      await directory.close().catch(() => undefined);
      // QUIT waits for a reply, which never comes while Redis is down: a stop must not hang on it.
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), 3_000);
        timer.unref();
      });
      const outcome = await Promise.race([connections.close().catch(() => undefined), gaveUp]);
      clearTimeout(timer);
      if (outcome === 'timeout') dropConnections(connections);
    },
  };
}

/** Drops the sockets without a goodbye (QUIT would wait in the offline queue for a Redis that is gone). */
function dropConnections(connections: RedisConnections): void {
  for (const role of connections.openRoles()) {
    try {
      connections.get(role).disconnect();
    } catch {
      // Already closing: close() is disconnecting them itself.
    }
  }
}
