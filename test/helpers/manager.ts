/** An in-process manager with its API on an ephemeral port, tuned for fast failure detection in tests. */
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { FleetClient } from '../../src/client/fleet-client.js';
import { parseConfig } from '../../src/config/load.js';
import type { FleetConfig } from '../../src/config/schema.js';
import { createApiServer, type ApiServerOptions } from '../../src/manager/http/server.js';
import { WorkerManager, type WorkerManagerDeps } from '../../src/manager/manager.js';

export interface TestManager {
  manager: WorkerManager;
  api: FastifyInstance;
  url: string;
  client: FleetClient;
  config: FleetConfig;
  stop(): Promise<void>;
}

export async function startManager(
  managerOverrides: Record<string, unknown> = {},
  options: {
    deps?: WorkerManagerDeps;
    /** Or a function of the manager, for plugins (the dashboard) that need it. */
    api?: ApiServerOptions | ((manager: WorkerManager) => ApiServerOptions);
    sections?: Record<string, unknown>;
  } = {},
): Promise<TestManager> {
  const config = parseConfig({
    manager: {
      port: 0,
      log_level: 'silent',
      health: { heartbeat_interval: '200ms', missed_heartbeats: 5, interval: '2s', timeout: '1s' },
      retries: { backoff: '20ms' },
      ...managerOverrides,
    },
    ...options.sections,
  });
  const manager = new WorkerManager(config, { logger: pino({ level: 'silent' }), ...options.deps });
  const token = config.manager.token;
  const extra = typeof options.api === 'function' ? options.api(manager) : options.api;
  const api = await createApiServer(manager, { ...(token ? { token } : {}), ...extra });
  await manager.start();
  const address = await api.listen({ host: '127.0.0.1', port: 0 });
  const client = new FleetClient({ url: address, ...(token ? { token } : {}) });
  return {
    manager,
    api,
    url: address,
    client,
    config,
    async stop() {
      await manager.stop();
      await api.close();
    },
  };
}
