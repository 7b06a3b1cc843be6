/**
 * `fleet up` with the figma-mcp worker against the fake Figma API (the machine has no internet): the manager
 * routes `ui-generation` to it and the generated code comes back through `fleet submit`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKETING_KEY, startFakeFigma, type FakeFigma } from '../../src/workers/figma-mcp/index.js';
import { startFleetUp, type FleetUp } from '../helpers/fleet-up.js';
import { CLI, freePort } from '../helpers/processes.js';

const run = promisify(execFile);

describe('fleet up routes ui-generation to the figma worker', () => {
  let fake: FakeFigma;
  let up: FleetUp | undefined;
  let env: NodeJS.ProcessEnv & { FLEET_PORT: string };

  beforeAll(async () => {
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
    up = await startFleetUp(
      ['--only', 'figma-mcp'],
      env,
      (workers) => workers.some((w) => w.workerType === 'figma-mcp' && w.status === 'online'),
      'the figma worker online under fleet up',
    );
  }, 90_000);

  afterAll(async () => {
    await up?.stop();
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
