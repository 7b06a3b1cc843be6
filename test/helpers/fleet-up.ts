/** `fleet up` as a child process, as a user starts it, ready once its workers are online. */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, requireBuild, waitFor } from './processes.js';

export interface WorkerSummary {
  workerType: string;
  status: string;
}

export interface FleetUp {
  proc: ChildProcess;
  /** The manager, e.g. http://127.0.0.1:PORT */
  url: string;
  log(): string;
  /** SIGTERM (the graceful path) and wait for the exit. */
  stop(): Promise<void>;
}

/**
 * `where`: the directory to start in (a `fleet.yaml` there) and the manager's URL when the port comes from that
 * file; otherwise the URL is `FLEET_PORT`'s.
 */
export async function startFleetUp(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: (workers: WorkerSummary[]) => boolean,
  what: string,
  timeoutMs = 60_000,
  where: { cwd?: string; url?: string } = {},
): Promise<FleetUp> {
  requireBuild();
  const url = where.url ?? (env.FLEET_PORT ? `http://127.0.0.1:${env.FLEET_PORT}` : undefined);
  if (!url) throw new Error('startFleetUp: give FLEET_PORT in env or where.url');
  let out = '';
  const proc = spawn(process.execPath, [CLI, 'up', ...args], {
    env,
    cwd: where.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const fleet: FleetUp = {
    proc,
    url,
    log: () => out,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`fleet up exited: ${out}`);
        const r = await fetch(`${url}/api/workers`).catch(() => undefined);
        if (!r?.ok) return false;
        return ready(((await r.json()) as { workers: WorkerSummary[] }).workers);
      },
      timeoutMs,
      what,
      200,
    );
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}
