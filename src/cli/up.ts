/**
 * `fleet up`: the embedded default. One process runs the manager (API, dashboard, metrics); every enabled
 * worker kind runs as a supervised child process on its port from the config, and a kind with
 * `autoscale.enabled` gets more instances on free ports while its queue needs them (supervised-scaling.ts).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { FleetConfig, WorkerSectionConfig } from '../config/schema.js';
import type { WorkerManager } from '../manager/public.js';
import { WORKER_KINDS } from '../workers/kinds.js';
import { watchParkedWorkers } from './parked-workers.js';
import { serveManager } from './serve-manager.js';
import { startAutoscaling, type AutoscalingHandle } from './supervised-scaling.js';
import { Supervisor, type ChildSpec } from './supervisor.js';

export interface UpOptions {
  config: FleetConfig;
  configFile?: string;
  /** Worker kinds to run; default: every kind whose config section is enabled. */
  only?: string[];
}

export interface RunningFleet {
  manager: WorkerManager;
  api: FastifyInstance;
  supervisor: Supervisor;
  /** Present when at least one started kind has `autoscale.enabled`. */
  autoscaling?: AutoscalingHandle;
  url: string;
  stop(): Promise<void>;
}

export async function up(options: UpOptions): Promise<RunningFleet> {
  // Without a token any local peer could dial a child worker and take its slots: fleet up's own children
  // get a token made for this run (or the configured one), in their environment, never on a command line.
  const workerToken =
    options.config.manager.worker_token ??
    options.config.manager.token ??
    randomBytes(32).toString('base64url');
  const config: FleetConfig = {
    ...options.config,
    manager: { ...options.config.manager, worker_token: workerToken },
  };
  const cliPath = fileURLToPath(new URL('./main.js', import.meta.url));
  const holder: { supervisor?: Supervisor } = {};
  const served = await serveManager(config, {
    restartWorker: async (worker) => {
      const child = holder.supervisor?.byPort(worker.port);
      return child ? holder.supervisor!.restart(child.id) : false;
    },
  });
  const { manager, api, url } = served;
  const limits = config.manager.supervisor;
  const supervisor = new Supervisor({
    command: process.execPath,
    baseArgs: [cliPath],
    logger: manager.logger,
    maxCrashes: limits.max_crashes,
    crashWindowMs: limits.crash_window,
    maxBackoffMs: limits.max_backoff,
  });
  holder.supervisor = supervisor;
  const unwatchParked = watchParkedWorkers(manager, supervisor);
  const lifetime = new AbortController();

  const sections = new Map<string, WorkerSectionConfig>();
  const childSpec = (type: string, port: number): ChildSpec => {
    const section = sections.get(type)!;
    return {
      kind: type,
      port,
      host: section.host,
      env: { FLEET_WORKER_TOKEN: workerToken },
      args: [
        'worker',
        type,
        '--port',
        String(port),
        '--host',
        section.host,
        ...(options.configFile ? ['--config', options.configFile] : []),
      ],
    };
  };

  for (const [type, entry] of Object.entries(WORKER_KINDS)) {
    const section = config[entry.section];
    if (options.only ? !options.only.includes(type) : !section.enabled) continue;
    sections.set(type, section);
    supervisor.start(childSpec(type, section.port));
    await manager.registerWorker({
      endpoint: `ws://${section.host}:${section.port}/ws`,
      workerType: type,
      source: 'spawned',
    });
  }

  const scaled = [...sections]
    .filter(([, section]) => section.autoscale.enabled)
    .map(([workerType, section]) => ({ workerType, section }));
  const autoscaling =
    scaled.length > 0
      ? await startAutoscaling(scaled, {
          manager,
          supervisor,
          logger: manager.logger,
          childSpec,
          signal: lifetime.signal,
          intervalMs: limits.scale_interval,
        })
      : undefined;

  let stopped = false;
  return {
    manager,
    api,
    supervisor,
    ...(autoscaling ? { autoscaling } : {}),
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      autoscaling?.stop();
      lifetime.abort();
      unwatchParked();
      // Running tasks get the manager's grace on live workers before the workers are stopped.
      await manager.shutdown();
      await supervisor.stopAll();
      await served.stop();
    },
  };
}
