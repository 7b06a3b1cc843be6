/**
 * The figma worker's finer MCP tools through the manager's gateway (proxied to the worker's own /mcp), next to
 * its capabilities, against the fake Figma API.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKETING_KEY, startFakeFigma, type FakeFigma } from '../../src/workers/figma-mcp/index.js';
import { startFleetUp, type FleetUp } from '../helpers/fleet-up.js';
import { freePort } from '../helpers/processes.js';

describe('MCP gateway proxies the figma worker tools', () => {
  let fake: FakeFigma;
  let up: FleetUp | undefined;
  let client: Client | undefined;

  beforeAll(async () => {
    fake = await startFakeFigma({ host: '127.0.0.1', port: 0 });
    up = await startFleetUp(
      ['--only', 'figma-mcp'],
      {
        ...process.env,
        FLEET_PORT: String(await freePort()),
        WORKER_FIGMA_PORT: String(await freePort()),
        FIGMA_API_BASE_URL: fake.url,
        FIGMA_API_TOKEN: fake.token,
        FIGMA_TEAM_ID: fake.teamId,
        FLEET_LOG_LEVEL: 'warn',
      },
      (workers) => workers.some((w) => w.workerType === 'figma-mcp' && w.status === 'online'),
      'the figma worker online under fleet up',
    );
    client = new Client({ name: 'figma-agent', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', up.url)));
  }, 90_000);

  afterAll(async () => {
    await client?.close();
    await up?.stop();
    await fake?.close();
  });

  it('lists the capabilities and the worker tools, and calls a worker tool', async () => {
    const { tools } = await client!.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['figma-design', 'ui-generation', 'figma_get_outline']));
    const outline = tools.find((t) => t.name === 'figma_get_outline')!;
    expect(outline._meta).toMatchObject({ fleet: { proxiedFrom: expect.any(String) } });
    const before = fake.requests.total;
    const r = (await client!.callTool({
      name: 'figma_get_outline',
      arguments: { file: MARKETING_KEY },
    })) as CallToolResult;
    expect(r.isError, JSON.stringify(r.content).slice(0, 500)).toBeFalsy();
    expect(JSON.stringify(r.structuredContent ?? r.content)).toMatch(/1:1|name/);
    expect(fake.requests.total).toBeGreaterThan(before);
    // The worker's own argument check answers through the gateway as a tool error.
    const bad = (await client!.callTool({
      name: 'figma_list_files',
      arguments: { project_id: 'abc' },
    })) as CallToolResult;
    expect(bad.isError).toBe(true);
    const unknown = (await client!.callTool({ name: 'figma_get_outlin', arguments: {} })) as CallToolResult;
    expect((unknown.content[0] as { text: string }).text).toMatch(
      /unknown_capability: .*did you mean "figma_get_outline"/,
    );
  });
});
