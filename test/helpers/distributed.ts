/**
 * Managers as separate processes on one Redis (distributed mode): each is `node dist/cli/main.js manager`
 * with `FLEET_STORE=redis`, so a `kill -9` is a real crash — sockets dropped, locks and leases left to expire.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI, freePort, requireBuild, waitFor } from './processes.js';

export interface ClusterConfig {
  redisUrl: string;
  prefix: string;
  /** manager.redis.lock_duration: how long a dead manager's tasks stay locked. */
  lockDuration?: string;
  heartbeatInterval?: string;
  missedHeartbeats?: number;
  maxAttempts?: number;
  /** Extra `manager:` fields. */
  manager?: Record<string, unknown>;
  /** Extra top-level sections (e.g. `echo: { max_concurrent_tasks: 2 }`). */
  sections?: Record<string, unknown>;
}

export interface Cluster {
  configFile: string;
  config: ClusterConfig;
  cleanup(): void;
}

/** One YAML file all managers of a test share (the file is how `lock_duration` and health get in). */
export function clusterConfig(config: ClusterConfig): Cluster {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-dist-'));
  const configFile = join(dir, 'fleet.yaml');
  writeFileSync(
    configFile,
    stringify({
      manager: {
        store: 'redis',
        redis: { url: config.redisUrl, prefix: config.prefix, lock_duration: config.lockDuration ?? '2s' },
        log_level: 'warn',
        health: {
          heartbeat_interval: config.heartbeatInterval ?? '200ms',
          missed_heartbeats: config.missedHeartbeats ?? 5,
          interval: '2s',
          timeout: '1s',
        },
        retries: { backoff: '20ms', max_backoff: '500ms', max_attempts: config.maxAttempts ?? 5 },
        ...config.manager,
      },
      ...config.sections,
    }),
  );
  return { configFile, config, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ManagerProcess {
  proc: ChildProcess;
  port: number;
  url: string;
  /** The id it reports on /health (its lease owner name). */
  id: string;
  output: () => string;
  exited: Promise<void>;
  /** SIGKILL: a crash. */
  kill(): void;
  /** SIGTERM: a graceful stop (hands held tasks back); resolves when the process has exited. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function spawnManager(
  cluster: Cluster,
  options: { port?: number; workers?: string[]; env?: Record<string, string> } = {},
): Promise<ManagerProcess> {
  // A free port can be taken by another test between probing and binding: then another one.
  for (let tries = 0; ; tries++) {
    try {
      return await spawnManagerOnce(cluster, tries === 0 ? options : { ...options, port: undefined });
    } catch (err) {
      if (tries >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function spawnManagerOnce(
  cluster: Cluster,
  options: { port?: number | undefined; workers?: string[]; env?: Record<string, string> },
): Promise<ManagerProcess> {
  requireBuild();
  const port = options.port ?? (await freePort());
  let out = '';
  const proc = spawn(process.execPath, [CLI, 'manager', '--config', cluster.configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      FLEET_PORT: String(port),
      FLEET_HOST: '127.0.0.1',
      FLEET_STORE: 'redis',
      FLEET_REDIS_URL: cluster.config.redisUrl,
      FLEET_REDIS_PREFIX: cluster.config.prefix,
      FLEET_WORKERS: (options.workers ?? []).join(','),
      ...options.env,
    },
  });
  running.add(proc);
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', () => {
      running.delete(proc);
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  let id = '';
  await waitFor(
    async () => {
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(`manager exited early (${proc.exitCode ?? proc.signalCode}): ${out}`);
      try {
        const res = await fetch(`${url}/health`);
        if (res.status !== 200) return false;
        id = ((await res.json()) as { managerId: string }).managerId;
        return true;
      } catch {
        return false;
      }
    },
    20_000,
    `manager on port ${port} to answer /health`,
    50,
  );
  return {
    proc,
    port,
    url,
    id,
    output: () => out,
    exited,
    kill: () => void proc.kill('SIGKILL'),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface ApiTask {
  id: string;
  state: string;
  capability: string;
  attempt: number;
  maxAttempts: number;
  workerId?: string;
  output?: unknown;
  error?: { code: string; message: string };
  attempts: {
    attempt: number;
    workerId: string;
    startedAt: number;
    finishedAt?: number;
    outcome?: string;
    error?: { code: string };
  }[];
}

export interface ApiWorker {
  workerId: string;
  workerType: string;
  endpoint: string;
  status: string;
  ownerId?: string;
  inFlight: number;
  maxConcurrency: number;
}

export async function api<T>(
  base: string,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method: init.method ?? 'GET',
    ...(init.body !== undefined
      ? { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }
      : {}),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (res.status >= 400) throw new Error(`${init.method ?? 'GET'} ${path} → ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

export const submitTask = async (base: string, body: Record<string, unknown>): Promise<ApiTask> =>
  (await api<{ task: ApiTask }>(base, '/api/tasks', { method: 'POST', body })).task;

export const getTask = async (base: string, id: string): Promise<ApiTask> =>
  (await api<{ task: ApiTask }>(base, `/api/tasks/${encodeURIComponent(id)}`)).task;

export const listWorkers = async (base: string): Promise<ApiWorker[]> =>
  (await api<{ workers: ApiWorker[] }>(base, '/api/workers')).workers;

export const registerWorker = (base: string, endpoint: string): Promise<unknown> =>
  api(base, '/api/workers', { method: 'POST', body: { endpoint } });

/**
 * Assignments a worker refused with `busy`: a worker refuses any task beyond its slots, so a manager (or two
 * managers sharing a worker) that ever over-assigned shows up here.
 */
export const busyRefusals = (tasks: ApiTask[]): number =>
  tasks.reduce((n, t) => n + t.attempts.filter((a) => a.error?.code === 'busy').length, 0);
