/**
 * Issue 14 point 5 end to end, across both layers: a figma-mcp worker process retries Figma itself and
 * reports the tries it spent (`details.upstreamAttempts`) and the upstream's `Retry-After`
 * (`details.retryAfter`) on `task.error`; the manager counts the tries against the task's one budget and
 * does not start the next attempt before the upstream allows. Fake Figma on loopback counts the requests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeFigma, type FakeFigma } from '../../../src/workers/figma-mcp/fake/fake-figma.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { spawnWorker, type WorkerProcess } from '../../helpers/processes.js';

describe('one retry budget across the figma worker and the manager', () => {
  let m: TestManager | undefined;
  let fake: FakeFigma | undefined;
  let w: WorkerProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    w?.kill('SIGKILL');
    await m?.stop();
    await fake?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    m = fake = w = dir = undefined;
  });

  async function figmaWorker(retry: Record<string, unknown>): Promise<WorkerProcess> {
    fake = await startFakeFigma();
    dir = await mkdtemp(join(tmpdir(), 'fleet-budget-'));
    const config = join(dir, 'fleet.yaml');
    await writeFile(config, JSON.stringify({ figma_mcp: { workspace: dir, figma_config: { retry } } }));
    return spawnWorker('figma-mcp', {
      env: {
        FLEET_CONFIG: config,
        FIGMA_API_TOKEN: fake.token,
        FIGMA_TEAM_ID: fake.teamId,
        FIGMA_API_BASE_URL: fake.url,
      },
    });
  }

  const apiRequests = () => fake!.requests.log.filter((r) => r.path.startsWith('/v1/teams/'));

  it('Figma answering 500: the upstream is hit at most the task budget (3), not worker tries x manager attempts', async () => {
    w = await figmaWorker({ max_attempts: 3, base_delay: '10ms', max_delay: '20ms' });
    fake!.setMode({ kind: 'server_error' });
    m = await startManager();
    await m.manager.registerWorker({ endpoint: w.endpoint });
    const task = await m.client.submit(
      'figma-design',
      { operation: 'figma_list_projects' },
      {
        maxAttempts: 3,
      },
    );
    const done = await m.client.wait(task.id, 30_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('figma_upstream');
    expect(done.attempts).toHaveLength(1);
    expect(done.attempts[0]!.error?.details?.upstreamAttempts).toBe(3);
    expect(apiRequests()).toHaveLength(3);
  }, 60_000);

  it('a 429 with Retry-After: the manager starts the next attempt no sooner than the upstream asked', async () => {
    // One HTTP try per attempt on the worker, so the wait is the manager's to honour.
    w = await figmaWorker({ max_attempts: 1 });
    fake!.setMode({ kind: 'rate_limit', retryAfter: 2 }, { times: 1 });
    m = await startManager();
    await m.manager.registerWorker({ endpoint: w.endpoint });
    const task = await m.client.submit(
      'figma-design',
      { operation: 'figma_list_projects' },
      {
        maxAttempts: 3,
        timeoutMs: 20_000,
      },
    );
    const done = await m.client.wait(task.id, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.attempts).toHaveLength(2);
    const first = done.attempts[0]!;
    expect(first.error?.code).toBe('figma_rate_limited');
    expect(first.error?.details).toMatchObject({ retryAfter: 2, upstreamAttempts: 1 });
    const [limited, ok] = apiRequests();
    expect(limited?.status).toBe(429);
    expect(ok?.status).toBe(200);
    expect(ok!.at - limited!.at).toBeGreaterThanOrEqual(2000);
  }, 60_000);
});
