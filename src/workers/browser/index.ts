/**
 * The browser-worker kind: a pool of headless Chromium instances (see `browser-pool.ts`), a URL policy enforced
 * by a per-task loopback proxy (`policy-proxy.ts`), and one handler per capability. The shared worker runtime
 * runs it: sockets, slots, deadlines, progress, /health and /metrics are not this module's business.
 */
import type { Logger } from 'pino';
import { pino } from 'pino';
import type { WorkerSectionConfig } from '../../config/schema.js';
import { FleetError } from '../../protocol/errors.js';
import type { TaskHandler, WorkerKind, WorkerKindContext } from '../common/worker-kind.js';
import { BrowserManager } from './browser-pool.js';
import { createFormFillingHandler } from './handlers/form-filling.js';
import { createPdfHandler } from './handlers/pdf-generation.js';
import { createScrapingHandler } from './handlers/scraping.js';
import { createScreenshotHandler } from './handlers/screenshot.js';
import { createTestingHandler } from './handlers/testing.js';
import { createAutomationHandler } from './handlers/web-automation.js';
import { browserOptionsFromSection, type BrowserOptions } from './options.js';
import type { BrowserKindDeps } from './page-session.js';
import { UrlPolicy } from './url-policy.js';

export const BROWSER_WORKER_VERSION = '0.1.0';

export const BROWSER_CAPABILITIES = [
  'web-automation',
  'scraping',
  'screenshot',
  'testing',
  'form-filling',
  'pdf-generation',
] as const;

export interface BrowserKind extends WorkerKind {
  /** The pool, once started (tests and benchmarks look inside). */
  readonly pool: BrowserManager | undefined;
  readonly options: BrowserOptions;
}

/** Builds the kind from the `browser_worker` section; `browser_config` is validated here (config_invalid). */
export function createBrowserKind(config: WorkerSectionConfig): BrowserKind {
  const options = browserOptionsFromSection(config);
  const policy = new UrlPolicy(options.url_policy);
  let pool: BrowserManager | undefined;
  let logger: Logger = pino({ level: 'silent' });
  let inFlight = 0;
  const maxTasks = config.max_concurrent_tasks;

  const deps: BrowserKindDeps = {
    get pool(): BrowserManager {
      if (!pool) throw new FleetError('draining', 'the browser pool is not started');
      return pool;
    },
    policy,
    limits: options.limits,
    defaultViewport: options.default_viewport,
    closeTimeoutMs: options.close_timeout,
    unresponsiveMs: options.unresponsive_timeout,
  };

  const all = [
    createAutomationHandler(deps),
    createScrapingHandler(deps),
    createScreenshotHandler(deps),
    createTestingHandler(deps),
    createFormFillingHandler(deps),
    createPdfHandler(deps),
  ];
  const wanted = new Set(config.capabilities);
  const unknown = config.capabilities.filter((c) => !all.some((h) => h.capability === c));
  if (unknown.length) {
    throw new FleetError(
      'config_invalid',
      `invalid configuration: browser_worker.capabilities: unknown capability ${unknown.join(', ')}`,
    );
  }
  // Over capacity is a typed `busy`, not a queue: the manager queues.
  const handlers: TaskHandler<any>[] = all // eslint-disable-line @typescript-eslint/no-explicit-any
    .filter((h) => wanted.has(h.capability))
    .map((h) => ({
      ...h,
      async run(payload: unknown, ctx) {
        if (inFlight >= maxTasks)
          throw new FleetError('busy', `the browser worker is running ${inFlight}/${maxTasks} tasks`);
        inFlight++;
        try {
          return await (h.run as (p: unknown, c: typeof ctx) => ReturnType<typeof h.run>)(payload, ctx);
        } finally {
          inFlight--;
        }
      },
    }));

  return {
    type: 'browser-worker',
    version: BROWSER_WORKER_VERSION,
    handlers,
    options,
    get pool() {
      return pool;
    },
    async start(ctx: WorkerKindContext) {
      logger = ctx.logger;
      pool = new BrowserManager(options, { logger, policy });
      await pool.start();
    },
    async stop() {
      await pool?.stop();
    },
    ready() {
      return (pool?.readyCount() ?? 0) > 0;
    },
    info() {
      return {
        browser: {
          executable: options.executable_path,
          performanceMode: options.performance_mode,
          memoryLimitMb: options.memory_limit_mb,
          maxTasksPerInstance: options.max_tasks_per_instance,
          inFlight,
          pool: pool?.snapshot() ?? null,
        },
      };
    },
  };
}

export { BrowserManager, type ChromeInstance } from './browser-pool.js';
export { parseBrowserOptions, type BrowserOptions, type BrowserConfigInput } from './options.js';
export { UrlPolicy } from './url-policy.js';
