/**
 * The `fleet` binary as an operator uses it: `fleet up -c fleet.yaml` in a temporary directory with a config
 * on free ports, and client commands run in that directory (so they find ./fleet.yaml as a user's would).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFleetUp } from './fleet-up.js';
import { CLI, freePort, requireBuild } from './processes.js';

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
  const url = `http://127.0.0.1:${port}`;
  const online = options.online ?? 1;
  let up;
  try {
    up = await startFleetUp(
      ['-c', 'fleet.yaml', ...(options.upArgs ?? ['--only', 'echo'])],
      cleanEnv(options.env),
      (workers) => workers.filter((w) => w.status === 'online').length >= online,
      'fleet up with its workers online',
      60_000,
      { cwd: dir, url },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const started = up;
  return {
    dir,
    url,
    port,
    echoPort,
    proc: started.proc,
    log: () => started.log(),
    run: (args, env) => fleet(args, { cwd: dir, env: cleanEnv(env) }),
    async stop() {
      await started.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
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
