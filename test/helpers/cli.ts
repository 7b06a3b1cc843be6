/**
 * The `fleet` binary as an operator uses it: `fleet up -c fleet.yaml` in a temporary directory with a config
 * on free ports, and client commands run in that directory (so they find ./fleet.yaml as a user's would).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, freePort, requireBuild, waitFor } from './processes.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment without the runner's own FLEET_* settings, so each test says what it sets. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLEET_')) env[k] = v;
  return { ...env, ...extra };
}

/** Runs `fleet …` to its end; never rejects, the exit code is part of the answer. */
export function fleet(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  requireBuild();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: options.cwd,
        env: options.env ?? cleanEnv(),
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export interface CliFleet {
  dir: string;
  url: string;
  port: number;
  echoPort: number;
  proc: ChildProcess;
  log(): string;
  /** Runs a client command in the fleet's directory. */
  run(args: string[], env?: Record<string, string>): Promise<CliResult>;
  stop(): Promise<void>;
}

export async function makeFleetDir(yaml: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-cli-'));
  // The python sandbox's workspace (./workspace) lives here and its own uid must be able to reach it.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'fleet.yaml'), yaml);
  return dir;
}

/** `fleet up -c fleet.yaml --only echo` on free ports, ready once `online` workers are (default 1). */
export async function startCliFleet(
  options: { extraYaml?: string; upArgs?: string[]; env?: Record<string, string>; online?: number } = {},
): Promise<CliFleet> {
  requireBuild();
  const port = await freePort();
  const echoPort = await freePort();
  const pythonPort = await freePort();
  const dir = await makeFleetDir(
    [
      'manager:',
      `  port: ${port}`,
      '  log_level: info',
      'echo:',
      `  port: ${echoPort}`,
      'python_sandbox:',
      `  port: ${pythonPort}`,
      options.extraYaml ?? '',
    ].join('\n'),
  );
  let out = '';
  const proc = spawn(
    process.execPath,
    [CLI, 'up', '-c', 'fleet.yaml', ...(options.upArgs ?? ['--only', 'echo'])],
    { cwd: dir, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const f: CliFleet = {
    dir,
    url,
    port,
    echoPort,
    proc,
    log: () => out,
    run: (args, env) => fleet(args, { cwd: dir, env: cleanEnv(env) }),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`fleet up exited: ${out}`);
        const r = await fetch(`${url}/api/workers`).catch(() => undefined);
        if (!r?.ok) return false;
        const { workers } = (await r.json()) as { workers: { status: string }[] };
        return workers.filter((w) => w.status === 'online').length >= (options.online ?? 1);
      },
      60_000,
      'fleet up with its workers online',
      200,
    );
  } catch (err) {
    await f.stop();
    throw err;
  }
  return f;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs `fleet …` under a pseudo-terminal (util-linux `script`), as in an operator's terminal: stdout and
 * stderr are that terminal, so what comes back is everything the terminal was sent, escapes included.
 */
export function fleetInPty(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number; output: string }> {
  requireBuild();
  const command = [process.execPath, CLI, ...args].map(shellQuote).join(' ');
  return new Promise((resolve) => {
    execFile(
      'script',
      ['-qec', `stty cols 120; exec ${command}`, '/dev/null'],
      {
        cwd: options.cwd,
        env: options.env ?? cleanEnv(),
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, output: stdout });
      },
    );
  });
}
