/**
 * Redis for tests. `getTestRedis()` uses `REDIS_URL` when set, else the machine's Redis on 127.0.0.1:6379
 * when it answers (unless `FLEET_TEST_REDIS=private`), else starts a private `redis-server` on a free loopback port (Debian's package). It never
 * skips: no Redis and no binary is a failing test with a message saying what to install.
 *
 * Tests keep to their own key prefix (`uniquePrefix()`) and delete it afterwards (`deleteKeys()`), so
 * they can share a Redis with each other and with a developer's Fleet.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface TestRedis {
  url: string;
  /** True when this process started the server (then `close()` stops it). */
  private: boolean;
  close(): Promise<void>;
}

export interface PrivateRedis extends TestRedis {
  port: number;
  /** Stops the server (SIGTERM: with `persistent` it flushes its append-only file first). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';
let shared: Promise<TestRedis> | undefined;

/** A key prefix no other test run uses. */
export const uniquePrefix = (label = 'fleet-test'): string => `${label}-${randomUUID().slice(0, 12)}`;

/** One Redis per test process; later calls get the same one. */
export function getTestRedis(): Promise<TestRedis> {
  shared ??= resolveTestRedis();
  return shared;
}

async function resolveTestRedis(): Promise<TestRedis> {
  const fromEnv = process.env.REDIS_URL?.trim();
  if (fromEnv) {
    if (!(await answers(fromEnv, 3000))) {
      throw new Error(`REDIS_URL=${fromEnv} does not answer PING; start that Redis or unset REDIS_URL`);
    }
    return { url: fromEnv, private: false, close: async () => {} };
  }
  // FLEET_TEST_REDIS=private rehearses the fresh-machine path even where a Redis is running.
  if (process.env.FLEET_TEST_REDIS !== 'private' && (await answers(DEFAULT_URL, 500)))
    return { url: DEFAULT_URL, private: false, close: async () => {} };
  const server = await startPrivateRedis();
  return server;
}

/** Whether a Redis at `url` answers PING within `timeoutMs`. */
export async function answers(url: string, timeoutMs: number): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export function redisServerBinary(): string {
  const candidates = [
    process.env.REDIS_SERVER_BIN,
    'redis-server',
    '/usr/bin/redis-server',
    '/usr/sbin/redis-server',
  ];
  for (const candidate of candidates) {
    if (!candidate) continue;
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  throw new Error(
    'No Redis for the tests: nothing answers on 127.0.0.1:6379, REDIS_URL is not set, and the redis-server binary ' +
      'is missing. Install it (Debian: `sudo apt-get install -y redis-server`) or point REDIS_URL at a Redis.',
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * A private redis-server on a free loopback port, for tests that must restart or kill Redis (never the
 * shared one). `persistent` turns on the append-only file (fsync always), so data survive `stop()`/`start()`
 * as they would in production.
 */
export async function startPrivateRedis(options: { persistent?: boolean } = {}): Promise<PrivateRedis> {
  const binary = redisServerBinary();
  const dir = mkdtempSync(join(tmpdir(), 'fleet-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    for (let tries = 0; tries < 5; tries++) {
      port ||= await freePort();
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        options.persistent ? 'yes' : 'no',
        '--appendfsync',
        'always',
        '--daemonize',
        'no',
      ];
      const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(proc);
      let output = '';
      proc.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      proc.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      proc.once('exit', () => running.delete(proc));
      const url = `redis://127.0.0.1:${port}`;
      const deadline = Date.now() + 10_000;
      let ok = false;
      while (Date.now() < deadline) {
        const done = await Promise.race([
          exited.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 50)),
        ]);
        if (done) break;
        if (await answers(url, 300)) {
          ok = true;
          break;
        }
      }
      if (ok) {
        child = proc;
        return;
      }
      proc.kill('SIGKILL');
      // Taken by someone else between probing and binding: only a fresh server may move to another port.
      if (/Address already in use/i.test(output) && !child && tries < 4) {
        if (!options.persistent) port = 0;
        continue;
      }
      throw new Error(`redis-server on 127.0.0.1:${port} did not start:\n${output.slice(-2000)}`);
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    private: true,
    stop,
    start: launch,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Deletes every key under `prefix:` (SCAN + UNLINK, never KEYS or FLUSHALL on a shared Redis). */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 3 });
  client.on('error', () => {});
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

/** Keys under `prefix:` (to check that a suite cleaned up). */
export async function countKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 3 });
  client.on('error', () => {});
  let count = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return count;
}
