/**
 * Starts what the dashboard e2e tests look at: a real WorkerManager with its HTTP API and the dashboard plugin
 * on 127.0.0.1 port 0, real echo WorkerServers (port 0) registered through `registerWorker`, and Debian's
 * headless Chromium driven through playwright-core.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { FleetConfigSchema, type FleetConfigInput } from '../../../src/config/schema.js';
import { dashboardPlugin } from '../../../src/manager/dashboard/index.js';
import { createApiServer } from '../../../src/manager/http/server.js';
import { WorkerManager } from '../../../src/manager/manager.js';
import { createEchoKind } from '../../../src/workers/echo/index.js';
import { launchChromium } from '../../helpers/chromium.js';
import { startWorker, workerConfig, type StartedWorker } from '../../helpers/fake-manager.js';

export const ARTIFACT_DIR = resolve('test-artifacts/dashboard');

export async function launchBrowser(): Promise<Browser> {
  return launchChromium();
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACT_DIR, { recursive: true });
  return join(ARTIFACT_DIR, name);
}

export interface WorkerSpec {
  /** Worker type announced in hello (an echo kind under another name). @default 'echo' */
  type?: string;
  maxConcurrency?: number;
}

export interface TestFleet {
  manager: WorkerManager;
  api: FastifyInstance;
  url: string;
  workers: StartedWorker[];
  addWorker(spec?: WorkerSpec): Promise<StartedWorker>;
  stop(): Promise<void>;
}

export async function startFleet(
  options: {
    manager?: NonNullable<FleetConfigInput['manager']>;
    workers?: WorkerSpec[];
    tickMs?: number;
  } = {},
): Promise<TestFleet> {
  const config = FleetConfigSchema.parse({
    manager: {
      port: 0,
      log_level: 'silent',
      health: { heartbeat_interval: '200ms', missed_heartbeats: 3 },
      retries: { max_attempts: 1 },
      ...options.manager,
    },
  });
  const managerId = `manager-dashboard-test-${process.pid}`;
  const manager = new WorkerManager({ ...config, manager: { ...config.manager, id: managerId } });
  const token = config.manager.token;
  const readToken = config.manager.read_token;
  const auth = { ...(token ? { token } : {}), ...(readToken ? { readToken } : {}) };
  const api = await createApiServer(manager, {
    ...auth,
    plugins: [dashboardPlugin(manager, { ...auth, ...(options.tickMs ? { tickMs: options.tickMs } : {}) })],
  });
  await manager.start();
  const address = await api.listen({ host: '127.0.0.1', port: 0 });
  const workers: StartedWorker[] = [];
  const addWorker = async (spec: WorkerSpec = {}) => {
    const type = spec.type ?? 'echo';
    const kind = { ...createEchoKind(workerConfig('echo')), type };
    const w = await startWorker(
      kind,
      { max_concurrent_tasks: spec.maxConcurrency ?? 4 },
      { workerId: `${type}-${workers.length + 1}`, ...(token ? { token } : {}) },
    );
    workers.push(w);
    const r = await manager.registerWorker({ endpoint: w.endpoint });
    if (!r.workerId) throw new Error(`worker ${w.endpoint} did not register: ${r.error ?? 'unknown'}`);
    return w;
  };
  for (const spec of options.workers ?? []) await addWorker(spec);
  return {
    manager,
    api,
    url: address,
    workers,
    addWorker,
    async stop() {
      await manager.stop();
      await api.close();
      await Promise.allSettled(workers.map((w) => w.stop()));
    },
  };
}
