/**
 * The MCP gateway as an agent meets it: `fleet up` with real python-sandbox and browser workers, and the MCP
 * SDK's own Client over Streamable HTTP. A scripted agent (no LLM) chains tools using MCP only.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetUp, type FleetUp } from '../helpers/fleet-up.js';
import { freePort } from '../helpers/processes.js';

const PNG_MAGIC = '89504e470d0a1a0a';

describe('MCP gateway with python-sandbox and browser workers', () => {
  let up: FleetUp | undefined;
  const clients: Client[] = [];

  beforeAll(async () => {
    const env = {
      ...process.env,
      FLEET_PORT: String(await freePort()),
      WORKER_PYTHON_PORT: String(await freePort()),
      WORKER_BROWSER_PORT: String(await freePort()),
      FLEET_LOG_LEVEL: 'warn',
    };
    up = await startFleetUp(
      ['--only', 'python-sandbox,browser-worker'],
      env,
      (workers) => workers.filter((w) => w.status === 'online').length === 2,
      'fleet up with python and browser workers online',
    );
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await up?.stop();
  });

  async function agent(): Promise<Client> {
    const client = new Client({ name: 'scripted-agent', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', up!.url)));
    clients.push(client);
    // Listing first makes the SDK check every structuredContent against the tool's outputSchema.
    await client.listTools();
    return client;
  }

  const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;
  const images = (r: CallToolResult) =>
    r.content.filter((c): c is { type: 'image'; data: string; mimeType: string } => c.type === 'image');

  it('lists python and browser tools with their schemas', async () => {
    const { tools } = await (await agent()).listTools();
    const names = tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['python-execution', 'screenshot', 'pdf-generation']));
    const py = tools.find((t) => t.name === 'python-execution')!;
    expect(py.inputSchema.properties).toHaveProperty('code');
    expect(py.inputSchema.additionalProperties).toBe(false);
    expect(tools.find((t) => t.name === 'screenshot')!.annotations?.readOnlyHint).toBe(true);
    // A run's result or a closed session's: one of two objects.
    expect(py.outputSchema).toMatchObject({ type: 'object' });
    const runResult = (py.outputSchema as { anyOf?: { properties?: object }[] }).anyOf?.[0];
    expect(runResult?.properties).toHaveProperty('stdout');
    expect(tools.find((t) => t.name === 'screenshot')!.outputSchema?.required).toContain('sha256');
  });

  it('returns a matplotlib figure as image content and streams stdout as progress', async () => {
    const client = await agent();
    const messages: string[] = [];
    const r = (await client.callTool(
      {
        name: 'python-execution',
        arguments: {
          code: [
            'import time, matplotlib',
            "matplotlib.use('Agg')",
            'import matplotlib.pyplot as plt',
            'for i in range(3):',
            "    print(f'step {i}', flush=True)",
            '    time.sleep(0.3)',
            'plt.plot([1, 2, 3], [1, 4, 9])',
          ].join('\n'),
        },
      },
      undefined,
      { onprogress: (p) => p.message && messages.push(p.message), timeout: 60_000 },
    )) as CallToolResult;
    expect(r.isError, text(r)).toBeFalsy();
    const [figure] = images(r);
    expect(figure?.mimeType).toBe('image/png');
    expect(Buffer.from(figure!.data, 'base64').subarray(0, 8).toString('hex')).toBe(PNG_MAGIC);
    // Streamed while it ran, not only in the final result.
    expect(messages.join('')).toContain('step 0');
    expect(messages.join('')).toContain('step 2');
  });

  it('keeps variables across calls in one MCP session, not across two', async () => {
    const a = await agent();
    const b = await agent();
    const set = (await a.callTool({
      name: 'python-execution',
      arguments: { code: 'x = 41' },
    })) as CallToolResult;
    expect(set.isError, text(set)).toBeFalsy();
    const read = (await a.callTool({
      name: 'python-execution',
      arguments: { code: 'x + 1' },
    })) as CallToolResult;
    expect(JSON.stringify(read.structuredContent)).toContain('42');
    const other = (await b.callTool({
      name: 'python-execution',
      arguments: { code: 'x + 1' },
    })) as CallToolResult;
    expect(JSON.stringify(other.structuredContent)).toMatch(/NameError/);
  });

  it('refuses a bad python payload at submit with the path', async () => {
    const r = (await (
      await agent()
    ).callTool({
      name: 'python-execution',
      arguments: { code: 'print(1)', figuers: false },
    })) as CallToolResult;
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(
      /^invalid_payload: .* at figuers: is not an allowed property \(rule: additionalProperties\)/,
    );
  });

  it('a scripted agent chains python → a page from its output → a screenshot, through MCP only', async () => {
    const client = await agent();
    const computed = (await client.callTool({
      name: 'python-execution',
      arguments: {
        code: [
          'rows = [(n, n * n) for n in range(1, 6)]',
          "cells = ''.join(f'<tr><td>{n}</td><td>{sq}</td></tr>' for n, sq in rows)",
          'html = f\'<html><body><h1 id="t">Squares: {sum(sq for _, sq in rows)}</h1><table>{cells}</table></body></html>\'',
          'html',
        ].join('\n'),
      },
    })) as CallToolResult;
    expect(computed.isError, text(computed)).toBeFalsy();
    const html = JSON.stringify(computed.structuredContent)
      .match(/<html>.*<\/html>/)?.[0]
      ?.replace(/\\"/g, '"');
    expect(html).toContain('Squares: 55');
    const shot = (await client.callTool({ name: 'screenshot', arguments: { html } }, undefined, {
      timeout: 60_000,
    })) as CallToolResult;
    expect(shot.isError, text(shot)).toBeFalsy();
    const [png] = images(shot);
    expect(png?.mimeType).toBe('image/png');
    expect(Buffer.from(png!.data, 'base64').subarray(0, 8).toString('hex')).toBe(PNG_MAGIC);
    expect(shot.structuredContent).toMatchObject({ title: '' });
  });
});
