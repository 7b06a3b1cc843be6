/** `GET /api/capabilities`: the catalog of what the fleet offers now (issue 18). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WorkerManager } from '../manager.js';

export function registerCatalogRoutes(
  app: FastifyInstance,
  manager: WorkerManager,
  guardRead: (req: FastifyRequest) => Promise<void>,
): void {
  app.get('/api/capabilities', { preHandler: guardRead }, async () => {
    const capabilities = manager.catalog.entries();
    const live = new Set(capabilities.map((c) => c.capability));
    return {
      capabilities,
      // Configured or seen before, with no connected worker now: submissions queue until one comes.
      offline: [...manager.knownCapabilities()].filter((c) => !live.has(c)).sort(),
    };
  });
}
