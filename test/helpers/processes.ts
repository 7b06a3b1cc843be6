/** Real worker processes for failover tests: spawned from the built CLI, killed with real signals. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface WorkerProcess {
  proc: ChildProcess;
  port: number;
  endpoint: string;
  output: () => string;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<void>;
}

export async function spawnWorker(
  kind: string,
  options: { port?: number; env?: Record<string, string>; args?: string[] } = {},
): Promise<WorkerProcess> {
  requireBuild();
  const port = options.port ?? (await freePort());
  let out = '';
  const proc = spawn(
    process.execPath,
    [CLI, 'worker', kind, '--port', String(port), '--host', '127.0.0.1', ...(options.args ?? [])],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FLEET_LOG_LEVEL: 'warn', ...options.env },
    },
  );
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const endpoint = `ws://127.0.0.1:${port}/ws`;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`worker ${kind} exited early: ${out}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        return res.status === 200;
      } catch {
        return false;
      }
    },
    15_000,
    `worker ${kind} on port ${port} to become healthy`,
  );
  return {
    proc,
    port,
    endpoint,
    output: () => out,
    kill: (signal = 'SIGKILL') => void proc.kill(signal),
    exited,
  };
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
