/**
 * Every tool through all three doors: the manager's task protocol (real runtime, real WebSocket), MCP over
 * Streamable HTTP and MCP over stdio, both through the SDK's own Client. Plus progress, cancellation and
 * the one concurrency limit shared by the doors.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectFakeManager,
  startWorker,
  type FakeManager,
  type StartedWorker,
} from '../../../helpers/fake-manager.js';
import { MARKETING_KEY } from '../../../../src/workers/figma-mcp/fake/fixtures/index.js';
import { createFigmaKind, type FigmaWorkerKind } from '../../../../src/workers/figma-mcp/index.js';
import { rig, type Rig } from './setup.js';

const STDIO_ENTRY = resolve('dist/workers/figma-mcp/stdio-main.js');

let r: Rig;
let kind: FigmaWorkerKind;
let worker: StartedWorker;
let fm: FakeManager;
let http: Client;
let stdio: Client;

beforeAll(async () => {
  if (!existsSync(STDIO_ENTRY))
    throw new Error(`${STDIO_ENTRY} is missing: build first (npx tsc -p tsconfig.build.json)`);
  r = await rig();
  kind = createFigmaKind(r.config);
  worker = await startWorker(kind, { workspace: r.workspace, figma_config: r.config.figma_config });
  fm = await connectFakeManager(worker.endpoint);
  http = new Client({ name: 'doors-test', version: '1.0.0' });
  await http.connect(new StreamableHTTPClientTransport(new URL(`${worker.baseUrl}/mcp`)));
  stdio = new Client({ name: 'doors-test', version: '1.0.0' });
  await stdio.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [STDIO_ENTRY],
      env: {
        PATH: process.env.PATH ?? '',
        FIGMA_API_TOKEN: r.fake.token,
        FIGMA_TEAM_ID: r.fake.teamId,
        FIGMA_API_BASE_URL: r.fake.url,
        FLEET_CONFIG: resolve('test/fixtures/figma/none.yaml'),
        FLEET_LOG_LEVEL: 'silent',
      },
      stderr: 'pipe',
    }),
  );
}, 60_000);

afterAll(async () => {
  await http?.close();
  await stdio?.close();
  await fm?.close();
  await worker?.stop();
  await r?.close();
});

const CASES: {
  capability: string;
  tool: string;
  args: Record<string, unknown>;
  check: (out: Record<string, unknown>) => void;
}[] = [
  {
    capability: 'figma-design',
    tool: 'figma_list_projects',
    args: {},
    check: (o) => expect(o.projects).toHaveLength(2),
  },
  {
    capability: 'figma-design',
    tool: 'figma_list_files',
    args: { project_id: '102' },
    check: (o) => expect(o.files).toHaveLength(1),
  },
  {
    capability: 'figma-design',
    tool: 'figma_get_outline',
    args: { file: MARKETING_KEY },
    check: (o) => expect(o.nodes).toContainEqual(expect.objectContaining({ id: '1:1' })),
  },
  {
    capability: 'figma-design',
    tool: 'figma_get_design',
    args: { file: MARKETING_KEY, node_ids: ['1:1'], depth: 2 },
    check: (o) => expect((o.nodes as { id: string }[])[0]!.id).toBe('1:1'),
  },
  {
    capability: 'ui-generation',
    tool: 'figma_generate_code',
    args: { file: MARKETING_KEY, node_id: '1:1', framework: 'html' },
    check: (o) => expect(o.html).toContain('data-figma-id="1:1"'),
  },
  {
    capability: 'asset-export',
    tool: 'figma_export_assets',
    args: { file: MARKETING_KEY, node_ids: ['1:1'], format: 'png', scale: 0.25 },
    check: (o) => expect(o.assets).toHaveLength(1),
  },
  {
    capability: 'asset-export',
    tool: 'figma_export_image_fills',
    args: { file: MARKETING_KEY },
    check: (o) => expect(o.assets).toHaveLength(2),
  },
  {
    capability: 'design-analysis',
    tool: 'figma_analyze_design',
    args: { file: MARKETING_KEY, node_ids: ['1:1'] },
    check: (o) => expect(o.summary).toContain('Contrast'),
  },
];

describe('task protocol door', () => {
  it.each(CASES)('$capability / $tool', async ({ capability, tool, args, check }) => {
    const answer = await fm.assign(capability, { operation: tool, ...args });
    expect(answer.type).toBe('task.result');
    if (answer.type !== 'task.result') return;
    check(answer.output as Record<string, unknown>);
    if (tool === 'figma_export_assets') {
      expect(answer.artifacts?.[0]).toMatchObject({ contentType: 'image/png' });
    }
    expect(fm.violations).toEqual([]);
  });

  it('answers invalid_payload for a bad operation or a tool from another capability', async () => {
    const a = await fm.assign('ui-generation', { operation: 'figma_list_projects' });
    expect(a).toMatchObject({ type: 'task.error', error: { code: 'invalid_payload' } });
    const b = await fm.assign('figma-design', { operation: 'nope' });
    expect(b).toMatchObject({ type: 'task.error', error: { code: 'invalid_payload' } });
    const c = await fm.assign('ui-generation', { file: MARKETING_KEY, node_id: '1:1' });
    expect(c.type).toBe('task.result');
  });
});

function structured(res: CallToolResult): Record<string, unknown> {
  expect(res.isError ?? false).toBe(false);
  return res.structuredContent as Record<string, unknown>;
}

describe('MCP doors', () => {
  it('list the same eight tools over HTTP and stdio', async () => {
    const a = (await http.listTools()).tools.map((t) => t.name).sort();
    const b = (await stdio.listTools()).tools.map((t) => t.name).sort();
    expect(a).toEqual(CASES.map((c) => c.tool).sort());
    expect(b).toEqual(a);
    const design = (await http.listTools()).tools.find((t) => t.name === 'figma_get_design')!;
    expect(design.inputSchema.required).toEqual(['file']);
  });

  it.each(['http', 'stdio'] as const)(
    '%s: every tool declares an outputSchema and describes every argument',
    async (door) => {
      const { tools } = await (door === 'http' ? http : stdio).listTools();
      for (const t of tools) {
        expect(t.outputSchema, t.name).toMatchObject({ type: 'object' });
        expect(Object.keys(t.outputSchema?.properties ?? {}).length, t.name).toBeGreaterThan(0);
        for (const [arg, schema] of Object.entries(t.inputSchema.properties ?? {}))
          expect((schema as { description?: string }).description, `${t.name}.${arg}`).toMatch(/\w{3}/);
      }
    },
  );

  it.each(['http', 'stdio'] as const)(
    '%s: a wrong argument type answers invalid_payload naming the field, not a raw -32602',
    async (door) => {
      const client = door === 'http' ? http : stdio;
      for (const [name, args, field] of [
        ['figma_analyze_design', { file: MARKETING_KEY, grid: 'x' }, 'grid'],
        ['figma_get_outline', { file: MARKETING_KEY, limit: '10' }, 'limit'],
        ['figma_generate_code', { file: MARKETING_KEY, node_id: '1:1', framework: 'vue' }, 'framework'],
        ['figma_get_design', {}, 'file'],
      ] as const) {
        const res = (await client.callTool({ name, arguments: args })) as CallToolResult;
        expect(res.isError, name).toBe(true);
        const text = (res.content[0] as { text: string }).text;
        expect(text).not.toContain('-32602');
        const { error } = JSON.parse(text) as {
          error: { code: string; message: string; retryable: boolean; details: { fields: string[] } };
        };
        expect(error).toMatchObject({
          code: 'invalid_payload',
          retryable: false,
          details: { fields: [field] },
        });
        expect(error.message).toContain(field);
      }
    },
  );

  it.each(CASES)('HTTP: $tool', async ({ tool, args, check }) => {
    const res = (await http.callTool({ name: tool, arguments: args })) as CallToolResult;
    check(structured(res));
    if (tool === 'figma_export_assets') {
      const img = res.content.find((c) => c.type === 'image');
      expect(img).toMatchObject({ mimeType: 'image/png' });
      expect(
        Buffer.from((img as { data: string }).data, 'base64')
          .subarray(1, 4)
          .toString(),
      ).toBe('PNG');
    }
  });

  it.each(CASES)('stdio: $tool', async ({ tool, args, check }) => {
    const res = (await stdio.callTool({ name: tool, arguments: args })) as CallToolResult;
    check(structured(res));
  });

  it('reports errors as tool errors with the Fleet code', async () => {
    const res = (await http.callTool({
      name: 'figma_get_design',
      arguments: { file: MARKETING_KEY, node_ids: ['77:77'] },
    })) as CallToolResult;
    expect(res.isError).toBe(true);
    expect(JSON.parse((res.content[0] as { text: string }).text)).toMatchObject({
      error: { code: 'figma_not_found' },
    });
    const bad = (await stdio.callTool({
      name: 'figma_export_assets',
      arguments: { file: MARKETING_KEY, node_ids: ['1:1'], out_dir: '../../etc' },
    })) as CallToolResult;
    expect(bad.isError).toBe(true);
  });

  it('sends progress notifications on long calls', async () => {
    const seen: number[] = [];
    await http.callTool(
      {
        name: 'figma_export_assets',
        arguments: { file: MARKETING_KEY, node_ids: ['1:1', '2:1'], scale: 0.1 },
      },
      undefined,
      {
        onprogress: (p) => seen.push(p.progress),
      },
    );
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
  });
});

describe('one limit, per-call cancellation', () => {
  it('never runs more than three calls at once across the three doors', async () => {
    r.fake.setMode({ kind: 'slow', delayMs: 300 }, { match: '/projects/' });
    kind.core.client.clearCache();
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, kind.core.limiter.active)), 5);
    try {
      const t0 = Date.now();
      // Distinct project ids: identical requests would share one flight and hide the limit.
      const calls = [
        ...['101', '102'].map((id) => fm.assign('figma-design', { operation: 'list_files', project_id: id })),
        ...['103', '104'].map((id) =>
          http.callTool({ name: 'figma_list_files', arguments: { project_id: id } }),
        ),
        stdio.callTool({ name: 'figma_list_files', arguments: { project_id: '105' } }),
      ];
      await Promise.all(calls);
      // The stdio door runs in its own process with its own limiter; here the worker's doors share one.
      expect(peak).toBe(3);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    } finally {
      clearInterval(timer);
      r.fake.setMode({ kind: 'normal' });
    }
  });

  it('cancels an MCP call over stdio and frees its slot', async () => {
    r.fake.setMode({ kind: 'slow', delayMs: 20_000 }, { match: '/projects/101' });
    kind.core.client.clearCache();
    const controller = new AbortController();
    const p = stdio.callTool({ name: 'figma_list_files', arguments: { project_id: '101' } }, undefined, {
      signal: controller.signal,
    });
    await new Promise((res) => setTimeout(res, 300));
    const t0 = Date.now();
    controller.abort();
    await expect(p).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(1_000);
    r.fake.setMode({ kind: 'normal' });
    const ok = (await stdio.callTool({ name: 'figma_list_projects', arguments: {} })) as CallToolResult;
    expect(ok.isError ?? false).toBe(false);
  });

  it('cancels an MCP call over HTTP (notifications/cancelled) and frees the shared slot', async () => {
    r.fake.setMode({ kind: 'slow', delayMs: 20_000 }, { match: '/projects/101' });
    kind.core.client.clearCache();
    const controller = new AbortController();
    const p = http.callTool({ name: 'figma_list_files', arguments: { project_id: '101' } }, undefined, {
      signal: controller.signal,
    });
    await new Promise((res) => setTimeout(res, 300));
    expect(kind.core.limiter.active).toBe(1);
    controller.abort();
    await expect(p).rejects.toThrow();
    await expect.poll(() => kind.core.limiter.active, { timeout: 2_000 }).toBe(0);
    r.fake.setMode({ kind: 'normal' });
  });

  it('cancels a task-protocol task through task.cancel', async () => {
    r.fake.setMode({ kind: 'slow', delayMs: 20_000 }, { match: '/projects/102' });
    kind.core.client.clearCache();
    const { taskId, leaseToken, answer } = fm.dispatch('figma-design', {
      operation: 'list_files',
      project_id: '102',
    });
    await expect.poll(() => kind.core.limiter.active, { timeout: 2_000 }).toBe(1);
    fm.cancel(taskId, 'test', leaseToken);
    await expect(answer).resolves.toMatchObject({ type: 'task.error', error: { code: 'cancelled' } });
    await expect.poll(() => kind.core.limiter.active, { timeout: 2_000 }).toBe(0);
    r.fake.setMode({ kind: 'normal' });
  });

  it('times out a task at its deadline', async () => {
    r.fake.setMode({ kind: 'slow', delayMs: 20_000 }, { match: '/projects/102' });
    kind.core.client.clearCache();
    const answer = await fm.assign(
      'figma-design',
      { operation: 'list_files', project_id: '102' },
      { timeoutMs: 500 },
    );
    expect(answer).toMatchObject({ type: 'task.error', error: { code: 'timeout' } });
    r.fake.setMode({ kind: 'normal' });
  });
});
