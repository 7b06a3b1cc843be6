/**
 * `fleet up` with the figma-mcp worker against the fake Figma API (the machine has no internet): the manager
 * routes `ui-generation` to it and the generated code comes back through `fleet submit`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKETING_KEY, startFakeFigma, type FakeFigma } from '../../src/workers/figma-mcp/index.js';
import { CLI, freePort, requireBuild, waitFor } from '../helpers/processes.js';

const run = promisify(execFile);

describe('fleet up routes ui-generation to the figma worker', () => {
  let fake: FakeFigma;
  let up: ChildProcess;
  let log = '';
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    requireBuild();
    fake = await startFakeFigma({ host: '127.0.0.1', port: 0 });
    env = {
      ...process.env,
      FLEET_PORT: String(await freePort()),
      WORKER_FIGMA_PORT: String(await freePort()),
      FIGMA_API_BASE_URL: fake.url,
      FIGMA_API_TOKEN: fake.token,
      FIGMA_TEAM_ID: fake.teamId,
      FLEET_LOG_LEVEL: 'warn',
    };
    up = spawn(process.execPath, [CLI, 'up', '--only', 'figma-mcp'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    up.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    up.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(
      async () => {
        if (up.exitCode !== null) throw new Error(`fleet up exited: ${log}`);
        const r = await fetch(`http://127.0.0.1:${env.FLEET_PORT}/api/workers`).catch(() => undefined);
        if (!r?.ok) return false;
        const { workers } = (await r.json()) as { workers: { workerType: string; status: string }[] };
        return workers.some((w) => w.workerType === 'figma-mcp' && w.status === 'online');
      },
      60_000,
      'the figma worker online under fleet up',
      200,
    );
  }, 90_000);

  afterAll(async () => {
    if (up && up.exitCode === null) {
      up.kill('SIGTERM');
      await new Promise((r) => up.once('exit', r));
    }
    await fake?.close();
  });

  it('fleet submit ui-generation returns HTML and React code for a node of the fake file', async () => {
    const before = fake.requests.total;
    const { stdout } = await run(
      process.execPath,
      [CLI, 'submit', 'ui-generation', JSON.stringify({ file: MARKETING_KEY, node_id: '1:1' })],
      { env },
    );
    const out = JSON.parse(stdout) as { state: string; output: Record<string, unknown> };
    expect(out.state).toBe('succeeded');
    const text = JSON.stringify(out.output);
    expect(text).toMatch(/<div|<section|<main/);
    expect(text).toMatch(/className=/);
    expect(fake.requests.total).toBeGreaterThan(before);
  });
});
