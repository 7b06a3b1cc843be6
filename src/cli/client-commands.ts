/**
 * The commands that act on a running fleet. They speak the manager's public API (FleetClient), find it as
 * connect.ts says, print tables for people and JSON with --json for scripts, and end through cli-errors.ts.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { ClientTask, FleetClient } from '../client/fleet-client.js';
import { closest } from '../config/strict-keys.js';
import { FleetError } from '../protocol/errors.js';
import { randomUUID } from 'node:crypto';
import { saveArtifacts } from './artifacts.js';
import { renderBoard } from './board.js';
import { followProgress, progressMode, ProgressView, type ProgressReport } from './progress.js';
import { EXIT, UsageError, errorLines, hintFor } from './cli-errors.js';
import { connect, withSource, type ClientOptions, type ResolvedManager } from './connect.js';
import { renderTask, renderTaskTable, resultView, taskError, withAbsoluteUrls } from './task-views.js';

export function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Opens the client for one command; a "cannot reach" error then says where the URL came from. */
export async function withClient(
  opts: ClientOptions,
  body: (client: FleetClient, manager: ResolvedManager) => Promise<void>,
): Promise<void> {
  const { client, manager } = connect(opts);
  try {
    await body(client, manager);
  } catch (err) {
    throw withSource(err, manager);
  }
}

/** --url, --token and -c on every client command. */
export function clientCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .addOption(new Option('--url <url>', 'manager URL (env FLEET_URL; default: from the config file)'))
    .addOption(new Option('--token <token>', 'API token (env FLEET_TOKEN; default: manager.token)'))
    .addOption(
      new Option(
        '-c, --config <file>',
        'config file to find the manager in (env FLEET_CONFIG, ./fleet.yaml)',
      ),
    );
}

/** Ends a command for a task that did not succeed: its error as one line, the record only when asked. */
function reportFailure(task: ClientTask, verbose: boolean): void {
  const error = taskError(task);
  if (verbose) print(task);
  process.stderr.write(errorLines(error, hintFor(error, task.id)));
  process.exitCode = EXIT.taskFailed;
}

/** An unknown capability gets the nearest one the fleet offers, or the list when none is near. */
async function suggestCapability(err: unknown, capability: string, c: FleetClient): Promise<unknown> {
  if (!(err instanceof FleetError) || err.code !== 'unknown_capability') return err;
  // The manager already named the likely fix in its message.
  if (typeof err.details?.suggestion === 'string') return err;
  const offered = [...new Set((await c.workers().catch(() => [])).flatMap((w) => w.capabilities))].sort();
  if (offered.length === 0) return err;
  const near = closest(capability, offered);
  const hint = near ? `did you mean "${near}"?` : `the fleet offers ${offered.join(', ')}`;
  return new FleetError(err.code, err.message, { details: { ...err.details, hint } });
}

/** A finished task's own stdout/stderr (python-execution keeps them in its output), when it has any. */
function printFinalOutput(task: ClientTask): boolean {
  const o = task.output as { stdout?: unknown; stderr?: unknown } | undefined;
  let printed = false;
  if (typeof o?.stdout === 'string' && o.stdout) {
    process.stdout.write(o.stdout);
    printed = true;
  }
  if (typeof o?.stderr === 'string' && o.stderr) {
    process.stderr.write(o.stderr);
    printed = true;
  }
  return printed;
}

export function registerClientCommands(program: Command): void {
  clientCommand(program, 'submit', 'submit a task, wait for it and print its result')
    .argument('<capability>', 'capability, e.g. echo, python-execution, screenshot')
    .argument('[payload]', 'JSON payload', '{}')
    .option('--no-wait', 'print the queued task and return at once')
    .option('--timeout <ms>', 'task timeout in ms', int)
    .option('--priority <n>', 'higher runs first', Number)
    .option('--session <id>', 'python session id (state kept between tasks)')
    .option('--create-if-missing', 'with --session: start the session afresh if its worker is gone')
    .option('--idempotency-key <key>', 'same key, same task')
    .option('-o, --out <dir>', 'save every artifact of the result in this directory')
    .option('-q, --quiet', 'no progress and no task output on stderr (for scripts)')
    .option('--json', 'print the whole task record as JSON')
    .option('-v, --verbose', 'on failure, print the whole task record too')
    .action(
      async (
        capability: string,
        payloadText: string,
        opts: ClientOptions & {
          wait: boolean;
          timeout?: number;
          priority?: number;
          session?: string;
          createIfMissing?: boolean;
          idempotencyKey?: string;
          out?: string;
          quiet?: boolean;
          json?: boolean;
          verbose?: boolean;
        },
      ) => {
        let payload: unknown;
        try {
          payload = JSON.parse(payloadText);
        } catch (err) {
          throw new FleetError('invalid_task', `payload is not JSON: ${(err as Error).message}`);
        }
        await withClient(opts, async (c, manager) => {
          const mode = opts.wait ? progressMode(opts, process.stderr) : 'quiet';
          const view = new ProgressView(process.stderr, mode, process.stderr.columns);
          // The id is chosen here so the progress stream is open before the task can start.
          const id = randomUUID();
          let stopFollowing =
            mode === 'quiet' ? undefined : await followProgress(c, id, view).catch(() => undefined);
          const task = await c
            .submit(capability, payload, {
              id,
              ...(opts.timeout !== undefined ? { timeoutMs: opts.timeout } : {}),
              ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
              ...(opts.session ? { sessionId: opts.session } : {}),
              ...(opts.createIfMissing ? { session: 'create-if-missing' as const } : {}),
              ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}),
            })
            .catch(async (err: unknown) => {
              stopFollowing?.();
              throw await suggestCapability(err, capability, c);
            });
          if (task.id !== id && stopFollowing) {
            // An idempotency key named an existing task: follow that one instead.
            stopFollowing();
            stopFollowing = await followProgress(c, task.id, view).catch(() => undefined);
          }
          if (!opts.wait) return print(withAbsoluteUrls(task, manager.url));
          const done = withAbsoluteUrls(
            await c.wait(task.id, (task.timeoutMs + 5000) * task.maxAttempts).finally(() => {
              stopFollowing?.();
              view.finish();
            }),
            manager.url,
          );
          if (done.state === 'succeeded') {
            const saved = opts.out ? await saveArtifacts(c, done, opts.out) : [];
            print({ ...(opts.json ? done : resultView(done)), ...(opts.out ? { saved } : {}) });
            for (const s of saved) process.stderr.write(`saved ${s.path} (${s.size} B)\n`);
            return;
          }
          reportFailure(done, opts.json === true || opts.verbose === true);
        });
      },
    );

  clientCommand(program, 'status', 'show every worker: status, load, tasks, last heartbeat')
    .option('-w, --watch', 'refresh in place')
    .option('--interval <ms>', 'refresh period with --watch', int, 1000)
    .option('--json', 'print JSON instead of the table')
    .action(async (opts: ClientOptions & { watch?: boolean; interval: number; json?: boolean }) =>
      withClient(opts, async (c, manager) => {
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
          process.stdout.write(`\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  ${manager.url}\n${text}\n`);
          await new Promise((r) => setTimeout(r, opts.interval));
        }
      }),
    );

  clientCommand(program, 'workers', 'list workers as JSON').action(async (opts: ClientOptions) =>
    withClient(opts, async (c) => print(await c.workers())),
  );

  clientCommand(program, 'tasks', 'list recent tasks (newest first)')
    .option('--state <states>', 'only these states, comma-separated (queued,running,failed,…)')
    .option('--capability <capability>', 'only this capability')
    .option('--worker <workerId>', 'only tasks run by this worker')
    .option('--limit <n>', 'at most n', int, 50)
    .option('--json', 'print the task records as JSON')
    .action(
      async (
        opts: ClientOptions & {
          state?: string;
          capability?: string;
          worker?: string;
          limit: number;
          json?: boolean;
        },
      ) =>
        withClient(opts, async (c, manager) => {
          const tasks = await c.list({
            ...(opts.state ? { state: opts.state } : {}),
            ...(opts.capability ? { capability: opts.capability } : {}),
            ...(opts.worker ? { workerId: opts.worker } : {}),
            limit: opts.limit,
          });
          if (opts.json) return print(tasks.map((t) => withAbsoluteUrls(t, manager.url)));
          process.stdout.write(`${renderTaskTable(tasks)}\n`);
        }),
    );

  clientCommand(program, 'task', 'show one task')
    .argument('<taskId>')
    .option('--json', 'print the whole record as JSON')
    .action(async (id: string, opts: ClientOptions & { json?: boolean }) =>
      withClient(opts, async (c, manager) => {
        const task = withAbsoluteUrls(await c.get(id), manager.url);
        if (opts.json) return print(task);
        process.stdout.write(`${renderTask(task)}\n`);
      }),
    );

  clientCommand(program, 'artifacts', "save a task's artifacts (all, or the names given)")
    .argument('<taskId>')
    .argument('[names...]', 'artifact names (default: all)')
    .option('-o, --out <dir>', 'directory to save into', '.')
    .option('--list', 'list the artifacts instead of saving them')
    .action(async (id: string, names: string[], opts: ClientOptions & { out: string; list?: boolean }) =>
      withClient(opts, async (c, manager) => {
        const task = withAbsoluteUrls(await c.get(id), manager.url);
        if (opts.list) {
          for (const a of task.artifacts ?? [])
            process.stdout.write(`${a.name}\t${a.contentType}\t${a.size}\t${a.url}\n`);
          return;
        }
        const saved = await saveArtifacts(c, task, opts.out, names);
        if (saved.length === 0) process.stderr.write(`task ${id} has no artifacts\n`);
        for (const s of saved) process.stdout.write(`${s.path}\n`);
      }),
    );

  clientCommand(
    program,
    'logs',
    "print a task's output and progress; --follow streams it until the task ends",
  )
    .argument('<taskId>')
    .option('-f, --follow', 'keep streaming until the task ends (exit code as submit)')
    .option('-q, --quiet', 'output only, no progress lines')
    .action(async (id: string, opts: ClientOptions & { follow?: boolean; quiet?: boolean }) =>
      withClient(opts, async (c) => {
        const view = new ProgressView(process.stderr, opts.quiet ? 'quiet' : 'lines');
        const out = (stream: string, data: string) =>
          (stream === 'stderr' ? process.stderr : process.stdout).write(data);
        let task = await c.get(id);
        const final = ['succeeded', 'failed', 'cancelled', 'timed_out'].includes(task.state);
        // Subscribe before reading the backlog so nothing said in between is missed.
        const stop =
          opts.follow && !final
            ? await c.events(
                (e) => {
                  if (e.type !== 'progress') return;
                  const p = e.progress as ProgressReport;
                  if (p.log) out(p.log.stream, p.log.data);
                  else view.report(p);
                },
                { taskId: id, types: ['progress'] },
              )
            : undefined;
        const printedOutput = final ? printFinalOutput(task) : false;
        if (!printedOutput) {
          for (const entry of await c.progressLog(id).catch(() => [])) {
            const m = entry.log ? /^\[(\w+)\] ([\s\S]*)$/.exec(entry.log) : null;
            if (m) out(m[1]!, m[2]!);
            else
              view.report({
                ...(entry.percent !== undefined ? { percent: entry.percent } : {}),
                ...(entry.message !== undefined ? { message: entry.message } : {}),
              });
          }
        }
        if (!stop) {
          if (final && task.state !== 'succeeded') reportFailure(task, false);
          return;
        }
        try {
          task = await c.wait(id, (task.timeoutMs + 5000) * task.maxAttempts);
        } finally {
          stop();
          view.finish();
        }
        if (task.state !== 'succeeded') reportFailure(task, false);
      }),
    );

  clientCommand(program, 'cancel', 'cancel a task')
    .argument('<taskId>')
    .option('--json', 'print the task record as JSON')
    .action(async (id: string, opts: ClientOptions & { json?: boolean }) =>
      withClient(opts, async (c) => {
        const task = await c.cancel(id);
        if (opts.json) return print(task);
        process.stdout.write(`${task.id} ${task.state}\n`);
      }),
    );

  clientCommand(program, 'drain', 'drain a worker: it finishes its tasks and takes no new ones')
    .argument('<workerId>')
    .action(async (id: string, opts: ClientOptions) =>
      withClient(opts, async (c) => {
        await c.drainWorker(id);
        process.stdout.write(`draining ${id}\n`);
      }),
    );

  clientCommand(program, 'resume', 'undo a drain: the worker takes tasks again')
    .argument('<workerId>')
    .action(async (id: string, opts: ClientOptions) =>
      withClient(opts, async (c) => {
        await c.resumeWorker(id);
        process.stdout.write(`resumed ${id}\n`);
      }),
    );

  clientCommand(program, 'restart', 'restart a worker process that fleet up supervises')
    .argument('<workerId>')
    .action(async (id: string, opts: ClientOptions) =>
      withClient(opts, async (c) => {
        if (!(await c.restartWorker(id)))
          throw new FleetError(
            'conflict',
            `worker ${id} could not be restarted (no supervised process for it)`,
          );
        process.stdout.write(`restarting ${id}\n`);
      }),
    );

  clientCommand(program, 'retry', 'run a finished task again (same id, a fresh attempt)')
    .argument('<taskId>')
    .option('--no-wait', 'return once it is queued')
    .option('-q, --quiet', 'no progress on stderr')
    .option('--json', 'print the whole task record as JSON')
    .action(async (id: string, opts: ClientOptions & { wait: boolean; quiet?: boolean; json?: boolean }) =>
      withClient(opts, async (c, manager) => {
        const view = new ProgressView(
          process.stderr,
          opts.wait ? progressMode(opts, process.stderr) : 'quiet',
          process.stderr.columns,
        );
        const stop =
          opts.wait && !opts.quiet ? await followProgress(c, id, view).catch(() => undefined) : undefined;
        const task = await c.retry(id).catch((err: unknown) => {
          stop?.();
          throw err;
        });
        if (!opts.wait) return print(withAbsoluteUrls(task, manager.url));
        const done = withAbsoluteUrls(
          await c.wait(task.id, (task.timeoutMs + 5000) * task.maxAttempts).finally(() => {
            stop?.();
            view.finish();
          }),
          manager.url,
        );
        if (done.state === 'succeeded') return print(opts.json ? done : resultView(done));
        reportFailure(done, opts.json === true);
      }),
    );
}

export { UsageError };
