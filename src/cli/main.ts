#!/usr/bin/env node
/**
 * The `fleet` command. Commands that act on a running fleet speak the manager's public API (FleetClient),
 * never its internals. Errors end the process with a one-line message and a non-zero exit code.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import type { FleetConfig } from '../config/schema.js';
import { FleetClient } from '../client/fleet-client.js';
import { FleetError } from '../protocol/errors.js';
import { runWorker } from '../workers/common/run-worker.js';
import { resolveKindName, WORKER_KINDS } from '../workers/kinds.js';
import { renderBoard } from './board.js';
import { serveManager } from './serve-manager.js';
import { up } from './up.js';

const VERSION = '0.1.0';

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function managerUrl(opts: { url?: string }): string {
  return opts.url ?? process.env.FLEET_URL ?? `http://127.0.0.1:${process.env.FLEET_PORT ?? '3000'}`;
}

function client(opts: { url?: string; token?: string }): FleetClient {
  const token = opts.token ?? process.env.FLEET_TOKEN;
  return new FleetClient({ url: managerUrl(opts), ...(token ? { token } : {}) });
}

function config(opts: { config?: string }, overrides?: Record<string, unknown>): FleetConfig {
  return loadConfig({ ...(opts.config ? { file: opts.config } : {}), ...(overrides ? { overrides } : {}) });
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
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
  .description('Fleet: a distributed worker manager for AI-agent systems')
  .version(VERSION)
  .showHelpAfterError('(run with --help for usage)');

const urlOption = () => new Option('--url <url>', 'manager URL (env FLEET_URL)');
const tokenOption = () => new Option('--token <token>', 'API token (env FLEET_TOKEN)');
const configOption = () =>
  new Option('-c, --config <file>', 'YAML config file (env FLEET_CONFIG, default ./fleet.yaml)');

program
  .command('up')
  .description('run the manager, the dashboard and every enabled worker on this machine (embedded mode)')
  .addOption(configOption())
  .option('-p, --port <port>', 'manager port (env FLEET_PORT)', int)
  .option('--only <kinds>', 'comma-separated worker kinds to run (default: every enabled section)')
  .action(async (opts: { config?: string; port?: number; only?: string }) => {
    const cfg = config(opts, opts.port !== undefined ? { manager: { port: opts.port } } : undefined);
    const only = opts.only?.split(',').map((k) => {
      const kind = resolveKindName(k.trim());
      if (!kind)
        throw new FleetError(
          'config_invalid',
          `unknown worker kind "${k}" (known: ${Object.keys(WORKER_KINDS).join(', ')})`,
        );
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
  .description('run the manager alone; it dials configured, announced and DNS-discovered workers')
  .addOption(configOption())
  .option('-p, --port <port>', 'port (env FLEET_PORT)', int)
  .action(async (opts: { config?: string; port?: number }) => {
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
  .option('--manager <url>', 'announce this worker to a manager at URL (it dials back)')
  .option('--advertise-host <host>', 'host name the manager should dial (default: the listen host)')
  .option('--stdio', 'figma-mcp only: speak MCP over stdin/stdout (for desktop MCP clients)')
  .addOption(tokenOption())
  .action(
    async (
      kindName: string,
      opts: {
        config?: string;
        port?: number;
        host?: string;
        manager?: string;
        advertiseHost?: string;
        token?: string;
        stdio?: boolean;
      },
    ) => {
      const type = resolveKindName(kindName);
      if (!type)
        throw new FleetError(
          'config_invalid',
          `unknown worker kind "${kindName}" (known: ${Object.keys(WORKER_KINDS).join(', ')})`,
        );
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

program
  .command('submit')
  .description('submit a task and print its result')
  .argument('<capability>', 'capability, e.g. echo, python-execution, screenshot')
  .argument('[payload]', 'JSON payload', '{}')
  .option('--no-wait', 'print the queued task and return at once')
  .option('--timeout <ms>', 'task timeout in ms', int)
  .option('--priority <n>', 'higher runs first', Number)
  .option('--session <id>', 'session id (python sessions)')
  .option('--idempotency-key <key>', 'same key, same task')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(
    async (
      capability: string,
      payloadText: string,
      opts: {
        wait: boolean;
        timeout?: number;
        priority?: number;
        session?: string;
        idempotencyKey?: string;
        url?: string;
        token?: string;
      },
    ) => {
      let payload: unknown;
      try {
        payload = JSON.parse(payloadText);
      } catch (err) {
        throw new FleetError('invalid_task', `payload is not JSON: ${(err as Error).message}`);
      }
      const c = client(opts);
      const task = await c.submit(capability, payload, {
        ...(opts.timeout !== undefined ? { timeoutMs: opts.timeout } : {}),
        ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
        ...(opts.session ? { sessionId: opts.session } : {}),
        ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}),
      });
      if (!opts.wait) return print(task);
      const done = await c.wait(task.id, (task.timeoutMs + 5000) * task.maxAttempts);
      print(
        done.state === 'succeeded'
          ? { id: done.id, state: done.state, output: done.output, artifacts: done.artifacts }
          : done,
      );
      if (done.state !== 'succeeded') process.exitCode = 1;
    },
  );

program
  .command('status')
  .description("print the Worker Status Board (the spec's table)")
  .option('-w, --watch', 'refresh in place')
  .option('--interval <ms>', 'refresh period with --watch', int, 1000)
  .option('--json', 'print JSON instead of the table')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(
    async (opts: { watch?: boolean; interval: number; json?: boolean; url?: string; token?: string }) => {
      const c = client(opts);
      const once = async () => {
        const s = await c.status();
        return opts.json ? JSON.stringify(s, null, 2) : renderBoard(s);
      };
      if (!opts.watch) {
        process.stdout.write(`${await once()}\n`);
        return;
      }
      for (;;) {
        let text: string;
        try {
          text = await once();
        } catch (err) {
          text = `fleet: ${(err as Error).message}`;
        }
        process.stdout.write(
          `\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  ${managerUrl(opts)}\n${text}\n`,
        );
        await new Promise((r) => setTimeout(r, opts.interval));
      }
    },
  );

program
  .command('workers')
  .description('list workers as JSON')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (opts: { url?: string; token?: string }) => print(await client(opts).workers()));

program
  .command('tasks')
  .description('list recent tasks as JSON')
  .option('--state <states>', 'comma-separated states')
  .option('--capability <capability>')
  .option('--limit <n>', 'at most n', int, 50)
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(
    async (opts: { state?: string; capability?: string; limit: number; url?: string; token?: string }) =>
      print(
        await client(opts).list({
          ...(opts.state ? { state: opts.state } : {}),
          ...(opts.capability ? { capability: opts.capability } : {}),
          limit: opts.limit,
        }),
      ),
  );

program
  .command('cancel')
  .description('cancel a task')
  .argument('<taskId>')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (id: string, opts: { url?: string; token?: string }) => print(await client(opts).cancel(id)));

program
  .command('drain')
  .description('drain a worker: it finishes its tasks and takes no new ones')
  .argument('<workerId>')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (id: string, opts: { url?: string; token?: string }) => {
    await client(opts).drainWorker(id);
    process.stdout.write(`draining ${id}\n`);
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
      `fake Figma API on ${fake.url}\n  FIGMA_API_BASE_URL=${fake.url} FIGMA_API_TOKEN=${fake.token} FIGMA_TEAM_ID=${fake.teamId}\n`,
    );
    const stop = () => void fake.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  const message =
    err instanceof FleetError
      ? `${err.code}: ${err.message}`
      : err instanceof Error
        ? err.message
        : String(err);
  process.stderr.write(`fleet: ${message}\n`);
  process.exit(err instanceof FleetError && err.code === 'config_invalid' ? 2 : 1);
});
