import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { McpHttpTransport } from '../../../src/manager/mcp/http-transport.js';

const ACCEPT = 'application/json, text/event-stream';

/** One MCP session on a real HTTP server: the SDK's Server behind the gateway's transport. */
class Harness {
  transport!: McpHttpTransport;
  http!: HttpServer;
  url = '';
  closedSessions: string[] = [];
  /** Releases the `slow` tool's calls. */
  release = () => undefined as void;
  aborted = 0;
  slowStarted = 0;

  async start(keepAliveMs = 60_000): Promise<void> {
    this.transport = new McpHttpTransport({
      sessionIdGenerator: () => 'session-1',
      onsessionclosed: (id) => void this.closedSessions.push(id),
      keepAliveMs,
    });
    const server = new Server({ name: 't', version: '1' }, { capabilities: { tools: {} } });
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const token = extra._meta?.progressToken;
      if (request.params.name === 'progress' && token !== undefined) {
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken: token, progress: 1, message: 'halfway' },
        });
      }
      if (request.params.name === 'slow') {
        this.slowStarted += 1;
        await new Promise<void>((resolve) => {
          this.release = resolve;
          const onAbort = () => {
            this.aborted += 1;
            resolve();
          };
          if (extra.signal.aborted) onAbort();
          else extra.signal.addEventListener('abort', onAbort);
        });
      }
      return { content: [{ type: 'text', text: `ran ${request.params.name}` }] };
    });
    await server.connect(this.transport);
    this.http = createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString()));
      req.on('end', () => {
        let body: unknown;
        try {
          body = raw ? JSON.parse(raw) : undefined;
        } catch {
          body = raw;
        }
        void this.transport.handleRequest(req, res, body);
      });
    });
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}/mcp`;
  }

  async stop(): Promise<void> {
    await this.transport.close();
    this.http.closeAllConnections();
    await new Promise((r) => this.http.close(r));
  }

  post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(this.url, {
      method: 'POST',
      headers: { accept: ACCEPT, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  }

  /** A POST within the session, after initialize. */
  inSession(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return this.post(body, { 'mcp-session-id': 'session-1', ...headers });
  }

  async initialize(): Promise<Response> {
    const res = await this.post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'c', version: '1' },
      },
    });
    await this.inSession({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return res;
  }
}

const call = (id: number, name: string, meta?: Record<string, unknown>) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: {}, ...(meta ? { _meta: meta } : {}) },
});

/** The `data:` of every `event: message` in an SSE body. */
const events = (text: string) =>
  text
    .split('\n\n')
    .filter((e) => e.includes('data: '))
    .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)) as Record<string, unknown>);

describe('the MCP gateway HTTP transport', () => {
  let h: Harness;
  beforeEach(async () => {
    h = new Harness();
    await h.start();
  });
  afterEach(async () => h.stop());

  it('answers initialize with the session id, as JSON', async () => {
    const res = await h.initialize();
    expect(res.status).toBe(200);
    expect(res.headers.get('mcp-session-id')).toBe('session-1');
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as { id: number; result: { protocolVersion: string } };
    expect(body).toMatchObject({ id: 0, result: { protocolVersion: LATEST_PROTOCOL_VERSION } });
  });

  it('answers a call with nothing to stream as one JSON body', async () => {
    await h.initialize();
    const res = await h.inSession(call(1, 'quick'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('content-length')).not.toBeNull();
    expect(res.headers.get('mcp-session-id')).toBe('session-1');
    expect(await res.json()).toMatchObject({ id: 1, result: { content: [{ text: 'ran quick' }] } });
  });

  it('turns the response into an event stream when progress goes out before the answer', async () => {
    await h.initialize();
    const res = await h.inSession(call(2, 'progress', { progressToken: 'p' }));
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const [progress, answer] = events(await res.text());
    expect(progress).toMatchObject({ method: 'notifications/progress', params: { progressToken: 'p' } });
    expect(answer).toMatchObject({ id: 2, result: { content: [{ text: 'ran progress' }] } });
  });

  it('turns a call still running at the keep-alive interval into an event stream with a keep-alive', async () => {
    await h.stop();
    h = new Harness();
    await h.start(50);
    await h.initialize();
    const res = await h.inSession(call(3, 'slow'));
    // The headers arrived before the answer: the stream opened on the keep-alive tick.
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain(': keepalive');
    h.release();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += new TextDecoder().decode(r.value);
    expect(events(rest)[0]).toMatchObject({ id: 3, result: { content: [{ text: 'ran slow' }] } });
  });

  it('answers a batch of calls in one JSON array', async () => {
    await h.initialize();
    const res = await h.inSession([call(4, 'quick'), call(5, 'quick')]);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as { id: number }[];
    expect(body.map((m) => m.id)).toEqual([4, 5]);
  });

  it('answers a batch that repeats a request id once, without waiting for a second answer', async () => {
    await h.initialize();
    const res = await h.inSession([call(7, 'quick'), call(7, 'quick')]);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toMatchObject({ id: 7 });
  });

  it('ends a call cancelled within its own batch', async () => {
    await h.initialize();
    const res = await h.inSession([
      call(8, 'slow'),
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 8 } },
    ]);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(events(await res.text())).toEqual([]);
    await expect.poll(() => h.aborted).toBe(1);
  });

  it('takes notifications with 202 and ends a cancelled call as an empty event stream', async () => {
    await h.initialize();
    const pending = h.inSession(call(6, 'slow'));
    await expect.poll(() => h.slowStarted).toBe(1);
    const cancel = await h.inSession({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 6, reason: 'test' },
    });
    expect(cancel.status).toBe(202);
    const res = await pending;
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(events(await res.text())).toEqual([]);
    await expect.poll(() => h.aborted).toBe(1);
  });

  it('refuses what the Streamable HTTP transport refuses', async () => {
    const status = async (p: Promise<Response>) => {
      const res = await p;
      const body = (await res.json()) as { error: { code: number; message: string } };
      return [res.status, body.error.code, body.error.message] as const;
    };
    expect((await status(h.inSession(call(1, 'quick'))))[2]).toMatch(/not initialized/);
    await h.initialize();
    expect(await status(h.inSession(call(1, 'quick'), { accept: 'application/json' }))).toEqual([
      406,
      -32000,
      expect.stringMatching(/Not Acceptable/),
    ]);
    expect((await status(h.inSession(call(1, 'quick'), { 'content-type': 'text/plain' })))[0]).toBe(415);
    expect((await status(h.inSession(Array.from({ length: 101 }, (_, i) => call(i, 'quick')))))[0]).toBe(400);
    expect(await status(h.inSession({ jsonrpc: '1.0', id: 1 }))).toEqual([
      400,
      -32700,
      'Parse error: Invalid JSON-RPC message',
    ]);
    expect((await status(h.post(call(1, 'quick'))))[2]).toMatch(/Mcp-Session-Id header is required/);
    expect(await status(h.post(call(1, 'quick'), { 'mcp-session-id': 'other' }))).toEqual([
      404,
      -32001,
      'Session not found',
    ]);
    expect(
      (await status(h.inSession(call(1, 'quick'), { 'mcp-protocol-version': '1999-01-01' })))[2],
    ).toMatch(/Unsupported protocol version/);
    const again = await status(
      h.inSession({
        jsonrpc: '2.0',
        id: 9,
        method: 'initialize',
        params: {
          protocolVersion: LATEST_PROTOCOL_VERSION,
          capabilities: {},
          clientInfo: { name: 'c', version: '1' },
        },
      }),
    );
    expect(again[2]).toMatch(/already initialized/);
    const put = await fetch(h.url, { method: 'PUT', headers: { 'mcp-session-id': 'session-1' } });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST, DELETE');
  });

  it('holds one standalone GET stream, and DELETE ends the session', async () => {
    await h.initialize();
    const get = () =>
      fetch(h.url, { headers: { accept: 'text/event-stream', 'mcp-session-id': 'session-1' } });
    const stream = await get();
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    expect((await get()).status).toBe(409);
    expect(
      (await fetch(h.url, { headers: { accept: 'application/json', 'mcp-session-id': 'session-1' } })).status,
    ).toBe(406);
    await h.transport.send({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    const reader = stream.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain(
      'notifications/tools/list_changed',
    );
    const del = await fetch(h.url, { method: 'DELETE', headers: { 'mcp-session-id': 'session-1' } });
    expect(del.status).toBe(200);
    expect(h.closedSessions).toEqual(['session-1']);
    // The GET stream ended with the session.
    for (let r = await reader.read(); !r.done; r = await reader.read());
    expect((await h.inSession(call(1, 'quick'))).status).toBe(404);
  });

  it('serves the SDK Client: progress and results, over JSON and event-stream answers alike', async () => {
    const client = new Client({ name: 'c', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(h.url)));
    try {
      const quick = await client.callTool({ name: 'quick', arguments: {} });
      expect(quick.content).toEqual([{ type: 'text', text: 'ran quick' }]);
      const seen: string[] = [];
      const withProgress = await client.callTool({ name: 'progress', arguments: {} }, undefined, {
        onprogress: (p) => seen.push(p.message ?? ''),
      });
      expect(seen).toEqual(['halfway']);
      expect(withProgress.content).toEqual([{ type: 'text', text: 'ran progress' }]);
    } finally {
      await client.close();
    }
  });
});
