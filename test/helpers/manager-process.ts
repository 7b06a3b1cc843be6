/** `fleet manager` as a real process with a generated config file, ready once its workers are online. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, freePort, requireBuild, waitFor } from './processes.js';

export interface ManagerProcess {
  proc: ChildProcess;
  url: string;
  log: () => string;
  exit: Promise<{ code: number | null; at: number }>;
}

export async function startManagerProcess(
  workers: string[],
  graceS: number,
  extra: Record<string, unknown> = {},
): Promise<ManagerProcess> {
  requireBuild();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fleet-i14-stop-'));
  const file = join(dir, 'fleet.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      manager: {
        port,
        log_level: 'info',
        workers,
        shutdown_grace: graceS,
        health: { heartbeat_interval: '200ms', missed_heartbeats: 5 },
        ...extra,
      },
    }),
  );
  let out = '';
  const proc = spawn(process.execPath, [CLI, 'manager', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FLEET_TOKEN: '', FLEET_LOG_LEVEL: 'info' },
  });
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<{ code: number | null; at: number }>((r) =>
    proc.once('exit', (code) => r({ code, at: Date.now() })),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`manager exited: ${out}`);
      const r = await fetch(`${url}/api/workers`).catch(() => undefined);
      if (!r?.ok) return false;
      const { workers: ws } = (await r.json()) as { workers: { status: string }[] };
      return ws.filter((w) => w.status === 'online').length === workers.length;
    },
    20_000,
    'manager with its workers online',
    100,
  );
  return { proc, url, log: () => out, exit };
}
