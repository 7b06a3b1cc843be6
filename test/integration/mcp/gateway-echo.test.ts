import { spawn } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { CLI, spawnWorker, waitFor, type WorkerProcess } from '../../helpers/processes.js';

const TOKEN = 'mcp-test-token';

describe('MCP gateway with echo workers (through the SDK Client)', () => {
  let m: TestManager;
  const workers: WorkerProcess[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    m = await startManager({ token: TOKEN });
    workers.push(await spawnWorker('echo', { env: { FLEET_TOKEN: TOKEN } }));
    await m.manager.registerWorker({ endpoint: workers[0]!.endpoint });
    await waitFor(() => m.manager.catalog.entries().length > 0, 15_000, 'catalog filled');
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const w of workers) w.kill('SIGKILL');
    await m?.stop();
  });

  async function httpClient(token = TOKEN): Promise<Client> {
    const client = new Client({ name: 'test', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', m.url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    clients.push(client);
    return client;
  }

  it('refuses a client without the token', async () => {
    await expect(httpClient('wrong')).rejects.toThrow();
    const res = await fetch(`${m.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  });

  it('lists the capabilities as tools with valid schemas and annotations', async () => {
    const client = await httpClient();
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['crash', 'echo', 'fail', 'sleep']);
    const ajv = new Ajv2020({ strict: false });
    for (const t of tools) {
      expect(t.inputSchema.type).toBe('object');
      expect(ajv.validateSchema(t.inputSchema)).toBe(true);
      expect(t.description?.length).toBeGreaterThan(10);
    }
    const sleep = tools.find((t) => t.name === 'sleep')!;
    expect(sleep.inputSchema.required).toEqual(['ms']);
    expect(sleep.outputSchema?.properties).toHaveProperty('sleptMs');
    expect(sleep.annotations).toMatchObject({ readOnlyHint: true, idempotentHint: true });
  });

  it('calls a tool: structuredContent and a text summary', async () => {
    const client = await httpClient();
    const r = await client.callTool({ name: 'echo', arguments: { hello: 'mcp' } });
    expect(r.isError).toBeFalsy();
    expect(r.structuredContent).toEqual({ hello: 'mcp' });
    expect((r.content as { type: string; text: string }[])[0]!.text).toContain('"hello": "mcp"');
  });

  it('returns an image artifact as image content and others as resource links served by resources/read', async () => {
    const client = await httpClient();
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const r = await client.callTool({
      name: 'echo',
      arguments: { artifact: { name: 'a.png', contentType: 'image/png', base64: png.toString('base64') } },
    });
    const image = (r.content as { type: string; data?: string; mimeType?: string }[]).find(
      (c) => c.type === 'image',
    );
    expect(image?.mimeType).toBe('image/png');
    expect(Buffer.from(image!.data!, 'base64')).toEqual(png);
    const r2 = await client.callTool({
      name: 'echo',
      arguments: {
        artifact: {
          name: 'notes.txt',
          contentType: 'text/plain',
          base64: Buffer.from('hi there').toString('base64'),
        },
      },
    });
    const link = (r2.content as { type: string; uri?: string }[]).find((c) => c.type === 'resource_link');
    expect(link?.uri).toMatch(/^fleet:\/\/tasks\/.+\/artifacts\/notes\.txt$/);
    const read = await client.readResource({ uri: link!.uri! });
    expect(read.contents[0]).toMatchObject({ mimeType: 'text/plain', text: 'hi there' });
    await expect(client.readResource({ uri: 'fleet://tasks/nope/artifacts/x' })).rejects.toThrow(/not_found/);
  });

  it('refuses a bad payload at submit with the JSON path, as a tool error (never -32602)', async () => {
    const client = await httpClient();
    const r = await client.callTool({ name: 'sleep', arguments: { ms: 'soon' } });
    expect(r.isError).toBe(true);
    expect((r.content as { text: string }[])[0]!.text).toMatch(/^invalid_payload: .*at ms: .*rule: type/);
    expect(r._meta).toMatchObject({
      fleet: { error: { code: 'invalid_payload', details: { path: 'ms', rule: 'type' } } },
    });
    const missing = await client.callTool({ name: 'sleep', arguments: {} });
    expect(missing._meta).toMatchObject({ fleet: { error: { details: { path: 'ms', rule: 'required' } } } });
    const unknown = await client.callTool({ name: 'ecoh', arguments: {} });
    expect(unknown.isError).toBe(true);
    expect((unknown.content as { text: string }[])[0]!.text).toMatch(
      /unknown_capability: .*did you mean "echo"/,
    );
    // Nothing reached the queue.
    expect((await m.manager.listTasks({ capability: 'sleep' })).length).toBe(0);
  });

  it('carries a failed task as a tool error with its Fleet code', async () => {
    const client = await httpClient();
    const r = await client.callTool({ name: 'fail', arguments: { code: 'handler_error', message: 'boom' } });
    expect(r.isError).toBe(true);
    expect((r.content as { text: string }[])[0]!.text).toMatch(/^handler_error: /);
  });

  it('relays progress and cancels the task on MCP cancellation', async () => {
    const client = await httpClient();
    const progress: number[] = [];
    const r = await client.callTool(
      { name: 'sleep', arguments: { ms: 600, progressEvery: 100 } },
      undefined,
      {
        onprogress: (p) => progress.push(p.progress),
      },
    );
    expect(r.isError).toBeFalsy();
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);

    const controller = new AbortController();
    const call = client.callTool({ name: 'sleep', arguments: { ms: 30_000 } }, undefined, {
      signal: controller.signal,
    });
    await waitFor(
      async () => (await m.manager.listTasks({ capability: 'sleep', state: ['running'] })).length === 1,
      10_000,
      'long sleep running',
    );
    controller.abort();
    await expect(call).rejects.toThrow();
    await waitFor(
      async () => (await m.manager.listTasks({ capability: 'sleep', state: ['cancelled'] })).length === 1,
      10_000,
      'the task cancelled',
    );
  });

  it('submits nothing for a call cancelled in its own batch', async () => {
    const post = (body: unknown, session?: string) =>
      fetch(`${m.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${TOKEN}`,
          ...(session ? { 'mcp-session-id': session } : {}),
        },
        body: JSON.stringify(body),
      });
    const init = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    const session = init.headers.get('mcp-session-id')!;
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    const before = (await m.manager.listTasks({ capability: 'sleep' })).length;
    const res = await post(
      [
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'sleep', arguments: { ms: 20_000 } } },
        { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } },
      ],
      session,
    );
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(await res.text()).toBe('');
    expect((await m.manager.listTasks({ capability: 'sleep' })).length).toBe(before);
    // The session goes on.
    expect((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, session)).status).toBe(200);
    await fetch(`${m.url}/mcp`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${TOKEN}`, 'mcp-session-id': session },
    });
  });

  it('works over stdio through `fleet mcp --url`', async () => {
    const client = new Client({ name: 'stdio-test', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--url', m.url, '--token', TOKEN],
        stderr: 'pipe',
      }),
    );
    clients.push(client);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('echo');
    const r = await client.callTool({ name: 'echo', arguments: { via: 'stdio' } });
    expect(r.structuredContent).toEqual({ via: 'stdio' });
    const bad = await client.callTool({ name: 'sleep', arguments: { ms: -1 } });
    expect(bad.isError).toBe(true);
    expect((bad.content as { text: string }[])[0]!.text).toMatch(/invalid_payload: .*at ms: .*rule: minimum/);
    const progress: number[] = [];
    await client.callTool({ name: 'sleep', arguments: { ms: 300, progressEvery: 100 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    expect(progress.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses bad payloads at submit through HTTP and the CLI with the path', async () => {
    const res = await fetch(`${m.url}/api/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ capability: 'sleep', payload: { ms: 5, progressEvery: 0 } }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as {
      error: { code: string; message: string; details: { path: string } };
    };
    expect(body.error.code).toBe('invalid_payload');
    expect(body.error.details.path).toBe('progressEvery');
    const cli = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const p = spawn(
        process.execPath,
        [CLI, 'submit', 'sleep', '{"ms":"x"}', '--url', m.url, '--token', TOKEN],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => resolve({ code, err }));
    });
    expect(cli.code).not.toBe(0);
    expect(cli.err).toMatch(/invalid_payload/);
    expect(cli.err).toMatch(/at ms/);
    const runCli = (args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const p = spawn(process.execPath, [CLI, ...args, '--url', m.url, '--token', TOKEN], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('exit', (code) => resolve({ code, out, err }));
      });
    const one = await runCli(['capabilities', 'sleep']);
    expect(one.code).toBe(0);
    expect((JSON.parse(one.out) as { payloadSchema: { required: string[] } }).payloadSchema.required).toEqual(
      ['ms'],
    );
    const table = await runCli(['capabilities']);
    // eslint-disable-next-line no-control-regex
    expect(table.out.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/sleep .*read-only, idempotent/);
    const typo = await runCli(['capabilities', 'slep']);
    expect(typo.code).not.toBe(0);
    expect(typo.err).toMatch(/unknown_capability: .*did you mean "sleep"/);
    const caps = await fetch(`${m.url}/api/capabilities`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const catalog = (await caps.json()) as {
      capabilities: { capability: string; payloadSchema?: unknown }[];
    };
    expect(catalog.capabilities.find((c) => c.capability === 'sleep')?.payloadSchema).toBeTruthy();
  }, 120_000);
  it('sends tools/list_changed when the offer changes as workers go and come', async () => {
    const client = await httpClient();
    await client.listTools();
    let changes = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changes += 1;
    });
    // Give the standalone SSE stream a moment to open.
    await new Promise((r) => setTimeout(r, 300));
    const events: { added: string[]; removed: string[] }[] = [];
    const unsubscribe = m.manager.subscribe((e) => {
      if (e.type === 'catalog') events.push(e);
    });
    workers[0]!.kill('SIGKILL');
    await waitFor(() => events.length >= 1, 15_000, 'catalog event on the worker gone');
    expect(events[0]!.removed).toContain('echo');
    expect((await client.listTools()).tools).toEqual([]);
    const again = await spawnWorker('echo', { env: { FLEET_TOKEN: TOKEN } });
    workers.push(again);
    await m.manager.registerWorker({ endpoint: again.endpoint });
    await waitFor(() => events.length >= 2, 15_000, 'catalog event on a worker back');
    expect(events[1]!.added).toContain('echo');
    await waitFor(() => changes >= 2, 10_000, 'list_changed notifications');
    unsubscribe();
  });
});
