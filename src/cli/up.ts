/**
 * `fleet up`: the embedded default. One process runs the manager (API, dashboard, metrics); every enabled
 * worker kind runs as a supervised child process on its port from the config.
 */
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { FleetConfig } from '../config/schema.js';
import type { WorkerManager } from '../manager/manager.js';
import { WORKER_KINDS } from '../workers/kinds.js';
import { serveManager } from './serve-manager.js';
import { Supervisor } from './supervisor.js';

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
  url: string;
  stop(): Promise<void>;
}

export async function up(options: UpOptions): Promise<RunningFleet> {
  const { config } = options;
  const cliPath = fileURLToPath(new URL('./main.js', import.meta.url));
  const holder: { supervisor?: Supervisor } = {};
  const served = await serveManager(config, {
    restartWorker: async (worker) => {
      const child = holder.supervisor?.byPort(worker.port);
      return child ? holder.supervisor!.restart(child.id) : false;
    },
  });
  const { manager, api, url } = served;
  const supervisor = new Supervisor({
    command: process.execPath,
    baseArgs: [cliPath],
    logger: manager.logger,
  });
  holder.supervisor = supervisor;

  for (const [type, entry] of Object.entries(WORKER_KINDS)) {
    const section = config[entry.section];
    if (options.only ? !options.only.includes(type) : !section.enabled) continue;
    const child = supervisor.start({
      kind: type,
      port: section.port,
      host: section.host,
      args: [
        'worker',
        type,
        '--port',
        String(section.port),
        '--host',
        section.host,
        ...(options.configFile ? ['--config', options.configFile] : []),
      ],
    });
    void child;
    await manager.registerWorker({
      endpoint: `ws://${section.host}:${section.port}/ws`,
      workerType: type,
      source: 'spawned',
    });
  }

  let stopped = false;
  return {
    manager,
    api,
    supervisor,
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      await supervisor.stopAll();
      await served.stop();
    },
  };
}
