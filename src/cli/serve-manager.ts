/** A manager with its API and dashboard, listening: what both `fleet manager` and `fleet up` run. */
import type { FastifyInstance } from 'fastify';
import type { FleetConfig } from '../config/schema.js';
import { dashboardPlugin } from '../manager/dashboard/index.js';
import { createApiServer } from '../manager/http/server.js';
import { WorkerManager, type WorkerManagerDeps } from '../manager/manager.js';

export interface ServedManager {
  manager: WorkerManager;
  api: FastifyInstance;
  /** The address it listens on, e.g. http://127.0.0.1:3000 */
  url: string;
  stop(): Promise<void>;
}

export async function serveManager(
  config: FleetConfig,
  deps: WorkerManagerDeps = {},
): Promise<ServedManager> {
  const manager = new WorkerManager(config, deps);
  const auth = {
    ...(config.manager.token ? { token: config.manager.token } : {}),
    ...(config.manager.read_token ? { readToken: config.manager.read_token } : {}),
  };
  const api = await createApiServer(manager, { ...auth, plugins: [dashboardPlugin(manager, auth)] });
  await manager.start();
  const address = await api.listen({ host: config.manager.host, port: config.manager.port });
  return {
    manager,
    api,
    url: address.replace('[::1]', '127.0.0.1'),
    async stop() {
      await manager.stop();
      await api.close();
    },
  };
}
