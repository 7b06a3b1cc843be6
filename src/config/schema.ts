/**
 * Fleet's configuration: the spec's YAML shape (`python_sandbox`, `figma_mcp`, `browser_worker` sections,
 * plus `manager`), every field with its default from the spec. User options go in; a resolved config with
 * every default filled comes out; a bad field fails at start with its path in the message.
 *
 * Kind-specific sub-sections (`sandbox`, `browser_config`, `figma_config`) pass through here untouched and
 * are validated by the worker kind itself (`WorkerKind.parseOptions`), so this module knows no worker's
 * internals. Every object is closed: an unknown key anywhere is an error with a suggestion (strict-keys.ts).
 */
import { z } from 'zod';

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;

/** A duration: a number of seconds (the spec writes `timeout: 300s`, env `WORKER_TIMEOUT=300`) or "500ms", "30s", "5m". Resolves to ms. */
export const duration = z.union([z.number().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return Math.round(value * 1000);
  const m = DURATION_RE.exec(value.trim());
  if (!m) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not a duration (use 300, "300s", "500ms", "5m")`,
    });
    return z.NEVER;
  }
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * factor);
});

export const HealthCheckSchema = z
  .object({
    endpoint: z.string().default('/health'),
    interval: duration.prefault(30),
    timeout: duration.prefault(5),
  })
  .prefault({});

export const AutoscaleSchema = z
  .object({
    enabled: z.boolean().default(false),
    min: z.number().int().nonnegative().default(1),
    max: z.number().int().positive().default(1),
    target_utilization: z.number().positive().max(1).default(0.7),
    tolerance: z.number().nonnegative().max(1).default(0.1),
    scale_up_step: z.number().int().positive().default(2),
    scale_down_window: duration.prefault(60),
    cooldown: duration.prefault(10),
    /** Memory (MB) one more instance needs; the scaler refuses when the host has less free. */
    instance_memory_mb: z.number().int().positive().default(512),
  })
  .prefault({});

/**
 * The common part of each worker section, in the spec's shape, plus `extra`: the kind's own sub-section key
 * (passed through as is, validated by the kind). Closed: other keys are typos.
 */
export function workerSection<Extra extends z.ZodRawShape = Record<never, never>>(
  defaults: {
    name: string;
    port: number;
    protocol: 'ws' | 'mcp';
    capabilities: readonly string[];
    max_concurrent_tasks: number;
    timeout: number;
    idempotent: readonly string[];
  },
  extra?: Extra,
) {
  return (
    z
      .object({
        enabled: z.boolean().default(true),
        name: z.string().min(1).default(defaults.name),
        type: z.literal('websocket').default('websocket'),
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(defaults.port),
        protocol: z.enum(['ws', 'mcp']).default(defaults.protocol),
        capabilities: z.array(z.string().min(1)).default([...defaults.capabilities]),
        workspace: z.string().default('./workspace'),
        max_concurrent_tasks: z.number().int().positive().default(defaults.max_concurrent_tasks),
        timeout: duration.prefault(defaults.timeout),
        /**
         * Capabilities whose tasks may run twice without harm. Only these are retried after a timeout (the
         * first run may still be going, or have had its effects); worker loss is retried for every capability.
         */
        idempotent: z.array(z.string().min(1)).default([...defaults.idempotent]),
        /**
         * How long tasks keep running after their manager connection dropped, and finished ones keep their
         * answer, waiting for a manager to connect and take them over (reconciliation). 0: abort at once.
         */
        reconnect_grace: duration.prefault(30),
        health_check: HealthCheckSchema,
        autoscale: AutoscaleSchema,
        ...(extra as Extra),
      })
      // Every field has a default; zod cannot see that through the generic `Extra`.
      .prefault({} as never)
  );
}

export const WORKER_DEFAULTS = {
  python_sandbox: {
    name: 'python-sandbox',
    port: 3001,
    protocol: 'ws',
    capabilities: ['python-execution', 'file-operations', 'package-install', 'code-analysis'],
    max_concurrent_tasks: 5,
    timeout: 300,
    idempotent: ['code-analysis'],
  },
  figma_mcp: {
    name: 'figma-mcp',
    port: 3002,
    protocol: 'mcp',
    capabilities: ['figma-design', 'ui-generation', 'asset-export', 'design-analysis'],
    max_concurrent_tasks: 3,
    timeout: 180,
    idempotent: ['figma-design', 'asset-export', 'design-analysis'],
  },
  browser_worker: {
    name: 'browser-worker',
    port: 3003,
    protocol: 'ws',
    capabilities: ['web-automation', 'scraping', 'screenshot', 'testing', 'form-filling', 'pdf-generation'],
    max_concurrent_tasks: 4,
    timeout: 120,
    idempotent: ['screenshot', 'pdf-generation'],
  },
  echo: {
    name: 'echo',
    port: 3010,
    protocol: 'ws',
    capabilities: ['echo', 'sleep', 'fail', 'crash'],
    max_concurrent_tasks: 8,
    timeout: 60,
    idempotent: ['echo', 'sleep'],
  },
} as const;

export type WorkerSectionKey = keyof typeof WORKER_DEFAULTS;

export const ManagerSchema = z
  .object({
    id: z.string().min(1).optional(),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(3000),
    /** When set, workers and clients must present it (Bearer). */
    token: z.string().min(1).optional(),
    /**
     * What the manager presents to workers when it dials them; defaults to `token`. `fleet up` generates one
     * per run for its own children when neither is set.
     */
    worker_token: z.string().min(1).optional(),
    /** Accepted for reads only (GET, event stream), e.g. for a wall-mounted dashboard. */
    read_token: z.string().min(1).optional(),
    strategy: z.enum(['least-load', 'round-robin', 'power-of-two', 'latency-ewma']).default('least-load'),
    store: z.enum(['memory', 'redis']).default('memory'),
    redis: z
      .object({
        url: z.string().default('redis://127.0.0.1:6379'),
        prefix: z.string().min(1).default('fleet'),
        password: z.string().optional(),
        tls: z.boolean().default(false),
        lock_duration: duration.prefault(10),
      })
      .prefault({}),
    queue: z
      .object({
        /** Tasks waiting at most; past it submit answers 429. */
        max_size: z.number().int().positive().default(10_000),
        /** Finished tasks kept for lookups. */
        retain_finished: z.number().int().nonnegative().default(10_000),
      })
      .prefault({}),
    /**
     * Bounds on a submitted task's payload, checked before anything is stored; a breach answers
     * 400 invalid_task naming the limit. Workers' outputs are held to the same shape.
     */
    submission: z
      .object({
        max_bytes: z
          .number()
          .int()
          .positive()
          .default(8 * 1024 * 1024),
        max_depth: z.number().int().positive().max(1000).default(64),
        max_keys: z.number().int().positive().default(100_000),
        max_string_length: z
          .number()
          .int()
          .positive()
          .default(8 * 1024 * 1024),
      })
      .prefault({}),
    /**
     * On SIGTERM: how long tasks already running may take to finish before the manager hands them back
     * (Redis) or counts them lost (memory) and exits.
     */
    shutdown_grace: duration.prefault(10),
    retries: z
      .object({
        max_attempts: z.number().int().positive().default(3),
        backoff: duration.prefault(0.1),
        max_backoff: duration.prefault(30),
      })
      .prefault({}),
    health: z
      .object({
        interval: duration.prefault(30),
        timeout: duration.prefault(5),
        /** Fast liveness path: heartbeat period, and how many missed beats mean offline. */
        heartbeat_interval: duration.prefault(1),
        missed_heartbeats: z.number().int().positive().default(3),
        unhealthy_threshold: z.number().int().positive().default(3),
      })
      .prefault({}),
    /** `fleet up`'s process supervisor and autoscaler. */
    supervisor: z
      .object({
        /** Crashes within `crash_window` after which a worker process is parked (status error, alert). */
        max_crashes: z.number().int().positive().default(5),
        crash_window: duration.prefault(60),
        /** Longest wait between restarts of a crashing worker (the backoff doubles from 1 s up to it). */
        max_backoff: duration.prefault(30),
        /** How often the autoscaler evaluates each autoscaled worker type. */
        scale_interval: duration.prefault(1),
      })
      .prefault({}),
    /** Static worker endpoints to dial (ws://host:port/ws). */
    workers: z.array(z.string().min(1)).default([]),
    /** DNS names that resolve to many worker hosts (headless services): "name:port". */
    dns: z.array(z.string().min(1)).default([]),
    max_frame_bytes: z
      .number()
      .int()
      .positive()
      .default(32 * 1024 * 1024),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .prefault({});

/**
 * Each kind's section with its own sub-section key. Anything that parses one section (the config, a test
 * starting one worker) goes through this table: a bare `workerSection(defaults)` is closed and would drop
 * the kind's sub-section.
 */
export const WORKER_SECTIONS = {
  python_sandbox: workerSection(WORKER_DEFAULTS.python_sandbox, { sandbox: z.unknown().optional() }),
  figma_mcp: workerSection(WORKER_DEFAULTS.figma_mcp, { figma_config: z.unknown().optional() }),
  browser_worker: workerSection(WORKER_DEFAULTS.browser_worker, { browser_config: z.unknown().optional() }),
  echo: workerSection(WORKER_DEFAULTS.echo),
} as const;

export const FleetConfigSchema = z
  .object({
    manager: ManagerSchema,
    python_sandbox: WORKER_SECTIONS.python_sandbox,
    figma_mcp: WORKER_SECTIONS.figma_mcp,
    browser_worker: WORKER_SECTIONS.browser_worker,
    echo: WORKER_SECTIONS.echo,
  })
  .strict();

export type FleetConfigInput = z.input<typeof FleetConfigSchema>;
export type FleetConfig = z.output<typeof FleetConfigSchema>;
export type ManagerConfig = FleetConfig['manager'];
/** Any worker section, as the kinds read it (each reads its own sub-section key). */
export type WorkerSectionConfig = FleetConfig['echo'] & {
  sandbox?: unknown;
  figma_config?: unknown;
  browser_config?: unknown;
};
