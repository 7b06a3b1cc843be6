#!/usr/bin/env node
/**
 * The `fleet` command. Commands that act on a running fleet speak the manager's public API (FleetClient),
 * never its internals. Errors end the process with a one-line message and a non-zero exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import type { FleetConfig } from '../config/schema.js';
import { closest } from '../config/strict-keys.js';
import { FleetError } from '../protocol/errors.js';
import { resolveLogFormat } from '../workers/common/logger.js';
import { runWorker } from '../workers/common/run-worker.js';
import { kindNames, resolveKindName, WORKER_KINDS } from '../workers/kinds.js';
import { EXIT, UsageError, errorLines, exitCodeFor, hintFor, toCliError, usageLine } from './cli-errors.js';
import { int, registerClientCommands } from './client-commands.js';
import { registerCatalogCommands } from './catalog-commands.js';
import { completionScript } from './completion.js';
import { serveManager } from './serve-manager.js';
import { up } from './up.js';

const VERSION = '0.1.0';

function config(opts: { config?: string }, overrides?: Record<string, unknown>): FleetConfig {
  return loadConfig({ ...(opts.config ? { file: opts.config } : {}), ...(overrides ? { overrides } : {}) });
}

function unknownKind(name: string): FleetError {
  const known = Object.keys(WORKER_KINDS);
  const near = closest(name, kindNames());
  return new FleetError(
    'config_invalid',
    `unknown worker kind "${name}" (${near ? `did you mean "${near}"? ` : ''}known: ${known.join(', ')})`,
  );
}

/**
 * Exits 0 once a graceful stop is done. The stop is bounded by the manager's grace; if something still hangs
 * well past it, the process exits 1 anyway rather than ignore the signal.
 */
function exitAfter(stopping: Promise<unknown>, graceMs: number): void {
  const force = setTimeout(() => {
    process.stderr.write('fleet: the graceful stop overran its bound; exiting\n');
    process.exit(1);
  }, graceMs + 30_000);
  force.unref();
  stopping.then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`fleet: stop failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}

/** Reads a secret from the environment and removes it, so nothing this process starts inherits it. */
function takeEnv(name: string): string | undefined {
  const value = process.env[name];
  delete process.env[name];
  return value || undefined;
}

/** Supervised children exit when the supervisor's pipe closes, even if it died by SIGKILL. */
function dieWithSupervisor(): void {
  if (process.env.FLEET_SUPERVISED !== '1') return;
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}

const program = new Command();
program
  .name('fleet')
  .description('Fleet: runs Python, browser and Figma tasks for AI agents on a fleet of workers')
  .addHelpText(
    'after',
    `
Examples:
  fleet up                                   start everything on this machine (./fleet.yaml if present)
  fleet submit echo '{"hello":"world"}'      run a task and print its result
  fleet submit screenshot '{"html":"<h1>Hi</h1>"}' --out shots
  fleet status --watch                       the workers, refreshed in place
  fleet tasks --state failed                 recent failures; fleet task <id> for one

Errors print one line and exit 1 (task failed), 2 (usage/config), 3 (manager unreachable),
4 (refused) or 5 (internal); see docs/errors.md.`,
  )
  .version(VERSION)
  // Set before the subcommands exist, so they inherit it: Commander's own errors (unknown option, missing
  // argument) end through the one handler below and take Fleet's one-line shape.
  .exitOverride()
  .configureOutput({
    outputError: (text, write) =>
      write(`${usageLine(text.replace(/^error: /, ''))}hint: fleet <command> --help shows the usage\n`),
  });

const logFormatOption = () =>
  new Option(
    '--log-format <format>',
    'logs: pretty (one line per event), json, or auto: pretty on a terminal (env FLEET_LOG_FORMAT)',
  );

/** Chosen once per process, before any logger exists; `fleet up`'s workers inherit it through the environment. */
function setLogFormat(opts: { logFormat?: string }): void {
  if (opts.logFormat === undefined) return;
  resolveLogFormat(opts.logFormat);
  process.env.FLEET_LOG_FORMAT = opts.logFormat;
}

const tokenOption = () => new Option('--token <token>', 'API token (env FLEET_TOKEN)');
const configOption = () =>
  new Option('-c, --config <file>', 'YAML config file (env FLEET_CONFIG, default ./fleet.yaml)');

program
  .command('up')
  .description('start the manager, the dashboard and the enabled workers on this machine')
  .addOption(configOption())
  .option('-p, --port <port>', 'manager port (env FLEET_PORT)', int)
  .option('--only <kinds>', 'comma-separated worker kinds to run (default: every enabled section)')
  .addOption(logFormatOption())
  .action(async (opts: { config?: string; port?: number; only?: string; logFormat?: string }) => {
    setLogFormat(opts);
    const cfg = config(opts, opts.port !== undefined ? { manager: { port: opts.port } } : undefined);
    const only = opts.only?.split(',').map((k) => {
      const kind = resolveKindName(k.trim());
      if (!kind) throw unknownKind(k.trim());
      return kind;
    });
    const fleet = await up({
      config: cfg,
      ...(opts.config ? { configFile: opts.config } : {}),
      ...(only ? { only } : {}),
    });
    process.stderr.write(
      `fleet is up: API ${fleet.url}/api, dashboard ${fleet.url}/dashboard, metrics ${fleet.url}/metrics\n`,
    );
    const shutdown = () => {
      process.stderr.write('fleet: stopping (draining workers)\n');
      exitAfter(fleet.stop(), cfg.manager.shutdown_grace);
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });

program
  .command('manager')
  .description('start only the manager; workers run elsewhere (manager.workers, `worker --manager`, or DNS)')
  .addOption(configOption())
  .option('-p, --port <port>', 'port (env FLEET_PORT)', int)
  .addOption(logFormatOption())
  .action(async (opts: { config?: string; port?: number; logFormat?: string }) => {
    setLogFormat(opts);
    const cfg = config(opts, opts.port !== undefined ? { manager: { port: opts.port } } : undefined);
    const served = await serveManager(cfg);
    served.manager.logger.info({ address: served.url }, `manager listening on ${served.url}`);
    const shutdown = () => exitAfter(served.stop(), cfg.manager.shutdown_grace);
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });

program
  .command('worker')
  .description(`run one worker service (${Object.keys(WORKER_KINDS).join(', ')})`)
  .argument('<kind>', 'worker kind')
  .addOption(configOption())
  .option('-p, --port <port>', 'port (default from the config section)', int)
  .option('--host <host>', 'address to listen on')
  .option('--manager <url>', 'register with the manager at URL (the manager then connects to this worker)')
  .option('--advertise-host <host>', 'host name the manager should dial (default: the listen host)')
  .option('--stdio', 'figma-mcp only: speak MCP over stdin/stdout (for desktop MCP clients)')
  .addOption(tokenOption())
  .addOption(logFormatOption())
  .action(
    async (
      kindName: string,
      opts: {
        logFormat?: string;
        config?: string;
        port?: number;
        host?: string;
        manager?: string;
        advertiseHost?: string;
        token?: string;
        stdio?: boolean;
      },
    ) => {
      setLogFormat(opts);
      const type = resolveKindName(kindName);
      if (!type) throw unknownKind(kindName);
      const entry = WORKER_KINDS[type]!;
      const cfg = config(opts);
      const section = { ...cfg[entry.section] };
      if (opts.port !== undefined) section.port = opts.port;
      if (opts.host) section.host = opts.host;
      if (opts.stdio) {
        if (type !== 'figma-mcp') {
          throw new FleetError('config_invalid', '--stdio is only for the figma-mcp worker (MCP over stdio)');
        }
        const { runFigmaStdio } = await import('../workers/figma-mcp/index.js');
        await runFigmaStdio(section);
        return;
      }
      const create = await entry.load();
      dieWithSupervisor();
      // fleet up hands its children a token generated for the run (FLEET_WORKER_TOKEN), so no other local
      // peer can take their slots.
      const token =
        opts.token ?? takeEnv('FLEET_WORKER_TOKEN') ?? cfg.manager.worker_token ?? cfg.manager.token;
      await runWorker(create(section), {
        config: section,
        maxInboundFrameBytes: cfg.manager.submission.max_bytes + 1024 * 1024,
        ...(token ? { token } : {}),
        ...(opts.manager ? { managerUrl: opts.manager } : {}),
        ...(opts.advertiseHost ? { advertiseHost: opts.advertiseHost } : {}),
      });
    },
  );

registerClientCommands(program);
registerCatalogCommands(program);

program
  .command('completion')
  .description('print shell completion: eval "$(fleet completion bash)"; also zsh, fish')
  .argument('<shell>', 'bash, zsh or fish')
  .action((shell: string) => {
    process.stdout.write(completionScript(program, shell));
  });

const dev = program.command('dev').description('development tools');
dev
  .command('figma-fake')
  .description(
    'serve the fake Figma REST API (loopback fixtures) to try the figma-mcp worker without a Figma account',
  )
  .option('-p, --port <port>', 'port (0 = any free one)', int, 3092)
  .option('--token <token>', 'the token the fake accepts')
  .option('--enterprise', 'answer the Variables API as an Enterprise plan does')
  .action(async (opts: { port: number; token?: string; enterprise?: boolean }) => {
    const { startFakeFigma } = await import('../workers/figma-mcp/index.js');
    const fake = await startFakeFigma({
      host: '127.0.0.1',
      port: opts.port,
      ...(opts.token ? { token: opts.token } : {}),
      ...(opts.enterprise ? { enterprise: true } : {}),
    });
    process.stdout.write(
      `fake Figma API on ${fake.url}\n  FIGMA_API_BASE_URL=${fake.url} FIGMA_API_TOKEN=${fake.token} FIGMA_TEAM_ID=${fake.teamId}\n` +
        `  OAuth instead: FIGMA_AUTH=oauth FIGMA_API_TOKEN=${fake.oauthToken}\n`,
    );
    const stop = () => void fake.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with 0; the message is already written.
    process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  const e = toCliError(err);
  const hint = e instanceof FleetError ? ((e.details?.hint as string | undefined) ?? hintFor(e)) : undefined;
  process.stderr.write(e instanceof UsageError ? usageLine(e.message) : errorLines(e, hint));
  process.exit(exitCodeFor(e));
});
