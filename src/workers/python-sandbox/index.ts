/**
 * The python-sandbox worker kind (port 3001): `python-execution`, `file-operations`, `package-install`
 * and `code-analysis`, all on sandboxed Debian python3. See README.md for the isolation chain and the
 * error model. The shared runtime (`workers/common/server.ts`) owns sockets, slots and deadlines.
 */
import { Counter, Gauge } from 'prom-client';
import type { WorkerSectionConfig } from '../../config/schema.js';
import { FleetError } from '../../protocol/errors.js';
import type { WorkerKind, WorkerKindContext } from '../common/worker-kind.js';
import { createCodeAnalysisHandler } from './handlers/code-analysis.js';
import { createFileOperationsHandler } from './handlers/file-operations.js';
import { createPackageInstallHandler } from './handlers/package-install.js';
import { createPythonExecutionHandler } from './handlers/python-execution.js';
import { parseSandboxOptions, resolveLimits } from './options.js';
import { treeRss } from './proc-stats.js';
import { SandboxRuntime } from './runtime.js';
import type { SandboxServices } from './services.js';
import { SessionManager } from './sessions.js';

export const PYTHON_SANDBOX_VERSION = '0.1.0';

export { parseSandboxOptions, SandboxOptionsSchema, type SandboxOptions } from './options.js';
export { SandboxRuntime } from './runtime.js';

/** Lazily-bound services: handlers exist from construction, the runtime from `start()`. */
export function createPythonSandboxKind(config: WorkerSectionConfig): WorkerKind {
  const options = parseSandboxOptions((config as Record<string, unknown>).sandbox);
  const limits = resolveLimits(options);
  const counters = { executions: new Map<string, number>(), kills: new Map<string, number>() };
  let services: SandboxServices | undefined;
  let started = false;
  // Handlers are built now (the runtime lists capabilities before start); the runtime exists after start().
  const base = { options, limits, counters };
  const proxy = new Proxy({} as SandboxServices, {
    get(_target, prop: string) {
      if (prop in base) return base[prop as keyof typeof base];
      if (!services) throw new FleetError('sandbox_unavailable', 'python-sandbox is not started');
      return services[prop as keyof SandboxServices];
    },
  });

  const kind: WorkerKind = {
    type: 'python-sandbox',
    version: PYTHON_SANDBOX_VERSION,
    handlers: [
      createPythonExecutionHandler(proxy),
      createFileOperationsHandler(proxy),
      createPackageInstallHandler(proxy),
      createCodeAnalysisHandler(proxy),
    ],
    async start(ctx: WorkerKindContext) {
      const runtime = new SandboxRuntime(
        options,
        config.workspace,
        ctx.logger.child({ component: 'python-sandbox' }),
      );
      await runtime.init();
      const sessions = new SessionManager(runtime, {
        ttlMs: options.session_ttl,
        maxSessions: options.max_sessions,
        logger: ctx.logger,
      });
      sessions.startSweeper();
      services = { options, limits, runtime, sessions, counters };
      started = true;
      runtime.refill();
      registerMetrics(ctx, () => services, counters);
    },
    async stop() {
      if (!services) return;
      const s = services;
      started = false;
      await s.sessions.stop();
      await s.runtime.stop();
    },
    ready() {
      // Not ready while refusing code (no isolation): the manager should not route python tasks here.
      return started && services !== undefined && services.runtime.canExecute;
    },
    info() {
      if (!services) return { isolation: { level: 'unavailable', secure: false, reason: 'not started' } };
      const { runtime, sessions } = services;
      const report = runtime.report;
      return {
        isolation: {
          level: report.level,
          secure: report.secure,
          ...(report.insecure
            ? { WARNING: 'INSECURE: untrusted code runs WITHOUT isolation (allow_insecure)' }
            : {}),
          chain: report.chain,
          cgroups: report.cgroups,
          limitsEnforced: report.limits,
          seccomp: report.seccomp,
          selfTests: report.selfTests.map((t) => ({
            level: t.level,
            passed: t.passed,
            durationMs: t.durationMs,
            ...(t.error ? { error: t.error } : {}),
          })),
          ...(report.reason ? { reason: report.reason } : {}),
        },
        limits: {
          memoryMb: options.memory_mb,
          maxProcesses: options.max_processes,
          cpuCores: options.cpu_cores,
          workspaceMb: options.workspace_mb,
          maxFileMb: options.max_file_mb,
          maxOutputKb: options.max_output_kb,
        },
        pool: runtime.poolState(),
        workspaceQuota: report.workspaceQuota,
        ...(runtime.uids ? { uids: { first: runtime.uids.first, count: runtime.uids.count } } : {}),
        sessions: { active: sessions.size, ttlMs: options.session_ttl, max: options.max_sessions },
        sandboxes: runtime.liveCount(),
        python: runtime.probe?.python.version,
        packages: {
          numpy: runtime.probe?.numpy ?? false,
          matplotlib: runtime.probe?.matplotlib ?? false,
          pyflakes: runtime.probe?.pyflakes ?? false,
          source: options.wheel_dir ? 'wheel_dir' : options.index_url ? 'index_url' : 'none',
        },
      };
    },
  };
  return kind;
}

function registerMetrics(
  ctx: WorkerKindContext,
  get: () => SandboxServices | undefined,
  counters: SandboxServices['counters'],
): void {
  const registers = [ctx.metrics];
  new Gauge({
    name: 'fleet_python_sandbox_isolation',
    help: 'Isolation level in force (1 on the active level label; insecure=1 means code runs WITHOUT isolation).',
    labelNames: ['level', 'insecure'],
    registers,
    collect() {
      const s = get();
      this.reset();
      if (s) this.set({ level: s.runtime.report.level, insecure: s.runtime.report.insecure ? '1' : '0' }, 1);
    },
  });
  new Gauge({
    name: 'fleet_python_sandbox_sessions',
    help: 'Active Python sessions.',
    registers,
    collect() {
      this.set(get()?.sessions.size ?? 0);
    },
  });
  new Gauge({
    name: 'fleet_python_sandbox_pool_ready',
    help: 'Pre-started interpreters waiting in the warm pool.',
    registers,
    collect() {
      this.set(get()?.runtime.poolState().ready ?? 0);
    },
  });
  new Gauge({
    name: 'fleet_python_sandbox_tree_rss_bytes',
    help: 'Resident memory of the worker and every sandbox it started.',
    registers,
    collect() {
      this.set(treeRss().bytes);
    },
  });
  new Counter({
    name: 'fleet_python_sandbox_executions_total',
    help: 'python-execution runs by outcome (ok, python_error, timeout, oom_killed, ...).',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      for (const [outcome, n] of counters.executions) this.inc({ outcome }, n);
    },
  });
  new Counter({
    name: 'fleet_python_sandbox_kills_total',
    help: 'Sandbox process trees killed, by reason.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of counters.kills) this.inc({ reason }, n);
    },
  });
}
