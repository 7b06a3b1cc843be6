/**
 * Redis connections for distributed mode (docs/architecture.md: Stores).
 *
 * One `RedisConnections` per process, handed to every Redis-backed store, opens at most one connection per
 * role and only when a role is first used:
 * - `command`: every request/response command — the BullMQ queues (which all share it), Fleet's Lua
 *   scripts, the worker directory. ioredis pipelines concurrent commands on one socket, so more
 *   connections would buy nothing but file descriptors.
 * - `subscriber`: pub/sub for task events across managers (a subscribed connection can do nothing else).
 *
 * Commands issued while Redis restarts wait in ioredis's offline queue and run after the reconnect
 * (`maxRetriesPerRequest: null`), so a Redis restart delays accepted work instead of losing it. Nothing
 * waits forever: `commandTimeoutMs` bounds how long one command may wait, then it fails with a clear error.
 */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { FleetError } from '../protocol/errors.js';

export const REDIS_ROLES = ['command', 'subscriber'] as const;
export type RedisRole = (typeof REDIS_ROLES)[number];

export interface RedisConnectionOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://…` (TLS). */
  url: string;
  /** Namespace for every key Fleet and BullMQ write; several fleets (or test runs) can share one Redis. */
  prefix: string;
  /** Overrides a password in the URL. */
  password?: string;
  /** Forces TLS even for a `redis://` URL. */
  tls?: boolean;
  /**
   * How long one command may wait (including while Redis is unreachable) before it fails.
   * @default 30000
   */
  commandTimeoutMs?: number;
  /** Shown in `CLIENT LIST`, handy when counting connections. @default "fleet" */
  clientName?: string;
}

const PREFIX_RE = /^[A-Za-z0-9._-]{1,100}$/;

export function validateRedisOptions(options: RedisConnectionOptions): void {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new FleetError(
      'config_invalid',
      `manager.redis.url: "${options.url}" is not a URL (use redis://host:port)`,
    );
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new FleetError(
      'config_invalid',
      `manager.redis.url: scheme must be redis:// or rediss://, got ${url.protocol}//`,
    );
  }
  if (!PREFIX_RE.test(options.prefix)) {
    throw new FleetError(
      'config_invalid',
      `manager.redis.prefix: "${options.prefix}" must be 1-100 of letters, digits and ._-`,
    );
  }
}

/** ioredis options for one role; exported for tests and the benchmark. */
export function redisClientOptions(options: RedisConnectionOptions, role: RedisRole): RedisOptions {
  const url = new URL(options.url);
  const useTls = options.tls === true || url.protocol === 'rediss:';
  return {
    connectionName: `${options.clientName ?? 'fleet'}:${role}`,
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(useTls ? { tls: { servername: url.hostname } } : {}),
    // Required by BullMQ, and what keeps accepted work through a Redis restart (see the header).
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    commandTimeout: role === 'subscriber' ? undefined : (options.commandTimeoutMs ?? 30_000),
    connectTimeout: 5_000,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
  };
}

export class RedisConnections {
  private readonly clients = new Map<RedisRole, Redis>();
  private closing: Promise<void> | undefined;
  private readonly errorListeners = new Set<(role: RedisRole, err: Error) => void>();

  constructor(readonly options: RedisConnectionOptions) {
    validateRedisOptions(options);
  }

  get prefix(): string {
    return this.options.prefix;
  }

  /** The connection for a role, opened on first use. */
  get(role: RedisRole): Redis {
    if (this.closing) throw new FleetError('conflict', 'the Redis connections are closed');
    let client = this.clients.get(role);
    if (!client) {
      client = new Redis(this.options.url, redisClientOptions(this.options, role));
      // Without a listener ioredis prints every reconnect attempt as an unhandled error event.
      client.on('error', (err: Error) => {
        for (const listener of this.errorListeners) listener(role, err);
      });
      this.clients.set(role, client);
    }
    return client;
  }

  /** Connection errors (reconnects are automatic; this is for logs and metrics). */
  onError(listener: (role: RedisRole, err: Error) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /** Roles with an open connection (for tests and `/metrics`). */
  openRoles(): RedisRole[] {
    return [...this.clients.keys()];
  }

  /** Fails with a clear message when Redis cannot be reached within `timeoutMs`. */
  async ping(timeoutMs = 5_000): Promise<void> {
    const client = this.get('command');
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          timer.unref();
        }),
      ]);
    } catch (err) {
      throw new FleetError(
        'internal',
        `Redis at ${redactUrl(this.options.url)} is unreachable: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(
        [...this.clients.values()].map(async (client) => {
          try {
            await client.quit();
          } catch {
            client.disconnect();
          }
        }),
      );
      this.clients.clear();
    })();
    return this.closing;
  }
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}

/** From `manager.redis` in the config to connection options. */
export function redisOptionsFromConfig(redis: {
  url: string;
  prefix: string;
  password?: string | undefined;
  tls: boolean;
}): RedisConnectionOptions {
  return {
    url: redis.url,
    prefix: redis.prefix,
    ...(redis.password !== undefined ? { password: redis.password } : {}),
    tls: redis.tls,
  };
}

/**
 * A Lua script run by SHA with a fallback to its source: after a Redis restart the script cache is empty,
 * and the first call after the reconnect must still work.
 */
export class RedisScript {
  private readonly sha: string;

  constructor(
    readonly name: string,
    private readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
