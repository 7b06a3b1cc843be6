/**
 * How every `fleet` command ends when something goes wrong: one line `fleet: <code>: <message>`, sometimes a
 * `hint:` line with the setting or command that helps, and an exit code from one table (docs/errors.md), so
 * scripts branch on the exit code and people read the line.
 */
import { FleetError, toFleetError, type FleetErrorShape } from '../protocol/errors.js';

export const EXIT = {
  /** The command did what was asked. */
  ok: 0,
  /** The task ran and did not succeed (failed, timed out, cancelled). */
  taskFailed: 1,
  /** Bad command line or configuration: fix the invocation or fleet.yaml. */
  usage: 2,
  /** No manager answered at the resolved URL. */
  unreachable: 3,
  /** The manager answered and refused (bad task, unknown capability, no such task, token, queue full…). */
  refused: 4,
  /** An unexpected error inside Fleet. */
  internal: 5,
} as const;

/** A command-line mistake caught before anything is sent (exit 2, shown as `fleet: usage: …`). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function exitCodeFor(err: FleetError | UsageError): number {
  if (err instanceof UsageError) return EXIT.usage;
  switch (err.code) {
    case 'config_invalid':
      return EXIT.usage;
    case 'manager_unreachable':
      return EXIT.unreachable;
    case 'internal':
      return EXIT.internal;
    default:
      return EXIT.refused;
  }
}

/** Errors from Node itself, said the way the rest of Fleet says them. */
export function toCliError(err: unknown): FleetError | UsageError {
  if (err instanceof UsageError || err instanceof FleetError) return err;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === 'EADDRINUSE') {
    const where = e.port !== undefined ? `${e.address ?? ''}:${e.port}` : 'its port';
    return new FleetError(
      'config_invalid',
      `the manager cannot listen on ${where}: the address is already in use (another fleet running? choose another manager.port or --port)`,
    );
  }
  if (e?.code === 'EACCES' && e.port !== undefined) {
    return new FleetError(
      'config_invalid',
      `the manager may not listen on ${e.address ?? ''}:${e.port} (ports below 1024 need privileges; choose another manager.port or --port)`,
    );
  }
  return toFleetError(err);
}

/** What helps with an error, when there is something better to say than its message. */
export function hintFor(
  error: Pick<FleetErrorShape, 'code' | 'message'>,
  taskId?: string,
): string | undefined {
  switch (error.code) {
    case 'url_blocked':
      return 'the browser worker refuses private, loopback and metadata addresses; allow one in fleet.yaml with browser_worker.browser_config.url_policy.allowed_addresses (e.g. ["127.0.0.1:8080"])';
    case 'timeout':
      return "give the task longer with --timeout <ms>, or raise the worker section's timeout in fleet.yaml";
    case 'no_worker':
      return 'no worker with this capability is online; see `fleet status`';
    case 'unauthorized':
      return "pass the manager's token with --token, FLEET_TOKEN or manager.token in fleet.yaml";
    case 'queue_full':
      return 'the queue is at manager.queue.max_size; submit again later or raise it';
    case 'sandbox_unavailable':
      return 'the python worker found no working isolation; see python_sandbox.sandbox.isolation in src/workers/python-sandbox/README.md';
    case 'oom_killed':
      return 'the code needs more memory than python_sandbox.sandbox.memory_mb allows';
    case 'figma_not_configured':
      return 'set FIGMA_API_TOKEN (and FIGMA_TEAM_ID), or figma_mcp.figma_config.api_token in fleet.yaml';
    case 'attempts_exhausted':
    case 'worker_lost':
      return taskId ? `every attempt is in \`fleet task ${taskId}\`` : undefined;
    default:
      return undefined;
  }
}

export function errorLines(error: Pick<FleetErrorShape, 'code' | 'message'>, hint?: string): string {
  const line = `fleet: ${error.code}: ${oneLine(error.message)}\n`;
  return hint ? `${line}hint: ${hint}\n` : line;
}

export function usageLine(message: string): string {
  return `fleet: usage: ${oneLine(message)}\n`;
}

/** A worker's message may span lines (a Python exception's text); the error stays one line. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
