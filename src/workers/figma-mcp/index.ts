/**
 * The figma-mcp worker kind (port 3002): a Figma REST client behind tools for four capabilities
 * (`figma-design`, `ui-generation`, `asset-export`, `design-analysis`), served through three doors that
 * share one execution core and one concurrency limit: the manager's task protocol (the WorkerKind
 * handlers), MCP over Streamable HTTP (`POST /mcp`) and MCP over stdio.
 */
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { WorkerSectionConfig } from '../../config/schema.js';
import { createLogger } from '../common/logger.js';
import type { WorkerKind } from '../common/worker-kind.js';
import { FigmaCore } from './core/figma-core.js';
import { figmaHandlers } from './handlers/capability-handler.js';
import { registerMcpRoutes } from './mcp/http-door.js';
import { serveStdio } from './mcp/stdio-door.js';
import { parseFigmaOptions } from './options.js';

export const FIGMA_KIND_VERSION = '0.1.0';

export {
  startFakeFigma,
  FAKE_TOKEN,
  FAKE_OAUTH_TOKEN,
  type FakeFigma,
  type FakeFigmaOptions,
  type FakeMode,
} from './fake/fake-figma.js';
export { MARKETING_KEY, DESIGN_SYSTEM_KEY, FAKE_TEAM_ID } from './fake/fixtures/index.js';
export { FigmaCore } from './core/figma-core.js';
export { parseFigmaOptions, type FigmaOptions } from './options.js';

/** Builds the core from the worker section (validates `figma_config`; a bad field throws `config_invalid`). */
export function createFigmaCore(config: WorkerSectionConfig, logger?: Logger): FigmaCore {
  const options = parseFigmaOptions(config);
  return new FigmaCore({
    options,
    maxConcurrent: config.max_concurrent_tasks,
    timeoutMs: config.timeout,
    workspace: config.workspace,
    ...(logger ? { logger } : {}),
  });
}

export interface FigmaWorkerKind extends WorkerKind {
  core: FigmaCore;
}

export function createFigmaKind(config: WorkerSectionConfig): FigmaWorkerKind {
  const core = createFigmaCore(config);
  const handlers = figmaHandlers(core);
  return {
    type: 'figma-mcp',
    version: FIGMA_KIND_VERSION,
    core,
    handlers,
    async start(ctx) {
      core.client.useLogger(ctx.logger.child({ component: 'figma-client' }));
      const snapshot = () => core.client.snapshot() as Record<string, number>;
      const gauges: [string, string, () => number][] = [
        ['figma_api_requests_total', 'Requests sent to the Figma API', () => snapshot().requests ?? 0],
        ['figma_api_cache_hits_total', 'Figma answers served from cache', () => snapshot().cacheHits ?? 0],
        ['figma_api_cache_misses_total', 'Figma answers not in cache', () => snapshot().cacheMisses ?? 0],
        ['figma_api_rate_limited_total', '429 answers from Figma', () => snapshot().rateLimited ?? 0],
        ['figma_api_retries_total', 'Retried Figma requests', () => snapshot().retries ?? 0],
        ['figma_calls_active', 'Figma tool calls running (all doors)', () => core.limiter.active],
        [
          'figma_calls_waiting',
          'Figma tool calls waiting for a slot (all doors)',
          () => core.limiter.waiting,
        ],
      ];
      for (const [name, help, read] of gauges) {
        if (ctx.metrics.getSingleMetric(name)) continue;
        new Gauge({
          name,
          help,
          registers: [ctx.metrics],
          collect() {
            this.set(read());
          },
        });
      }
      if (!core.client.configured)
        ctx.logger.warn('FIGMA_API_TOKEN is not set: figma tools will answer figma_not_configured');
    },
    info() {
      const s = core.client.snapshot();
      return {
        figmaConfigured: core.client.configured,
        defaultTeam: core.client.defaultTeamId !== undefined,
        mcp: { http: '/mcp', stdio: true },
        calls: { active: core.limiter.active, waiting: core.limiter.waiting, max: core.limiter.max },
        cache: { entries: s.cacheEntries, hits: s.cacheHits, misses: s.cacheMisses },
      };
    },
    ready: () => true,
    routes(app) {
      registerMcpRoutes(app, core, FIGMA_KIND_VERSION);
    },
  };
}

/** MCP over stdio on this process's stdin/stdout (for `fleet worker figma --stdio`). Resolves once connected. */
export async function runFigmaStdio(config: WorkerSectionConfig): Promise<{ close(): Promise<void> }> {
  const logger = createLogger('figma-mcp');
  const core = createFigmaCore(config, logger);
  if (!core.client.configured)
    logger.warn('FIGMA_API_TOKEN is not set: figma tools will answer figma_not_configured');
  return serveStdio(core, FIGMA_KIND_VERSION);
}
