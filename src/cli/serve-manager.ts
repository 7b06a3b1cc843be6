/** A manager with its API and dashboard, listening: what both `fleet manager` and `fleet up` run. */
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { FleetConfig } from '../config/schema.js';
import { logDestination } from '../workers/common/logger.js';
import { dashboardPlugin } from '../manager/dashboard/index.js';
import { createApiServer } from '../manager/http/server.js';
import {
  WorkerManager,
  createManagerStores,
  generateManagerId,
  type WorkerManagerDeps,
} from '../manager/public.js';

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
  // The id is fixed before the stores open: it names this manager on leases and in the queue's events.
  const m = config.manager;
  const id = m.id ?? generateManagerId();
  const logger = deps.logger ?? pino({ level: m.log_level, base: { managerId: id } }, logDestination());
  const withId: FleetConfig = { ...config, manager: { ...m, id } };
  // Injected stores (tests) win; otherwise manager.store decides (Redis: one connection set per process).
  const stores = deps.queue && deps.directory ? undefined : await createManagerStores(withId, { logger });
  const manager = new WorkerManager(withId, { ...stores?.deps, ...deps, logger });
  try {
    // Listen for other managers' task events before taking any work, so none is missed.
    await manager.ready();
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
        // The graceful stop releases waiters and streams first, so closing the API never waits on them;
        // stopping the manager hands the tasks it holds back to the shared queue before Redis is closed.
        await manager.shutdown();
        await api.close();
        await stores?.close();
      },
    };
  } catch (err) {
    await manager.stop().catch(() => undefined);
    await stores?.close().catch(() => undefined);
    throw err;
  }
}
