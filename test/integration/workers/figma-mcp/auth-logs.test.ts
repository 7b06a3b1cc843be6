/**
 * OAuth and personal tokens each in their own header (against the fake, which like Figma accepts each only
 * there), the token never carried along a redirect, and the worker's Figma client reporting retries and
 * failures through the worker's logger.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../../helpers/fake-manager.js';
import { createFigmaKind, parseFigmaOptions } from '../../../../src/workers/figma-mcp/index.js';
import { call, rig, type Rig } from './setup.js';

let r: Rig;
beforeAll(async () => {
  r = await rig();
});
afterAll(() => r?.close());

describe('OAuth and personal access tokens', () => {
  it('sends an OAuth token as Authorization: Bearer when auth is oauth', async () => {
    const o = await rig({ auth: 'oauth', api_token: r.fake.oauthToken });
    try {
      const res = await call(o.core, 'figma_list_projects', {});
      expect(res.output.projects).toHaveLength(2);
      expect(o.fake.requests.log.map((e) => e.auth)).toEqual(['bearer']);
    } finally {
      await o.close();
    }
  });

  it('keeps personal tokens in X-Figma-Token by default', async () => {
    r.fake.requests.reset();
    r.core.client.clearCache();
    await call(r.core, 'figma_list_projects', {});
    expect(r.fake.requests.log.map((e) => e.auth)).toEqual(['x-figma-token']);
  });

  it('answers figma_auth with a hint, and no token, when a token goes in the wrong header', async () => {
    for (const [auth, token, hint] of [
      ['personal', 'oauth', 'figma_config.auth: oauth'],
      ['oauth', 'personal', 'figma_config.auth: personal'],
    ] as const) {
      const secret = token === 'oauth' ? r.fake.oauthToken : r.fake.token;
      const o = await rig({ auth, api_token: secret });
      try {
        const err = await call(o.core, 'figma_list_projects', {}).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'figma_auth', retryable: false });
        expect((err as Error).message).toContain(hint);
        expect(JSON.stringify(err)).not.toContain(secret);
      } finally {
        await o.close();
      }
    }
  });

  it('refuses an unknown auth kind at start with config_invalid naming the field', async () => {
    expect(() => parseFigmaOptions({ name: 'figma', figma_config: { auth: 'basic' } })).toThrow(
      expect.objectContaining({
        code: 'config_invalid',
        message: expect.stringContaining('figma_mcp.figma_config.auth'),
      }),
    );
  });

  it('works over the stdio MCP door with FIGMA_AUTH=oauth', async () => {
    const stdio = new Client({ name: 'auth-test', version: '1.0.0' });
    await stdio.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [resolve('dist/workers/figma-mcp/stdio-main.js')],
        env: {
          PATH: process.env.PATH ?? '',
          FIGMA_API_TOKEN: r.fake.oauthToken,
          FIGMA_AUTH: 'oauth',
          FIGMA_TEAM_ID: r.fake.teamId,
          FIGMA_API_BASE_URL: r.fake.url,
          FLEET_CONFIG: resolve('test/fixtures/figma/none.yaml'),
          FLEET_LOG_LEVEL: 'silent',
        },
        stderr: 'pipe',
      }),
    );
    try {
      r.fake.requests.reset();
      const res = (await stdio.callTool({ name: 'figma_list_projects', arguments: {} })) as CallToolResult;
      expect(res.isError ?? false).toBe(false);
      expect(r.fake.requests.log.map((e) => e.auth)).toEqual(['bearer']);
    } finally {
      await stdio.close();
    }
  }, 30_000);
});

describe('redirects', () => {
  let elsewhere: Server;
  const seen: Record<string, string | string[] | undefined>[] = [];
  beforeAll(async () => {
    elsewhere = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"name":"elsewhere","projects":[]}');
    });
    await new Promise<void>((ok) => elsewhere.listen(0, '127.0.0.1', ok));
  });
  afterAll(() => new Promise<void>((ok) => elsewhere.close(() => ok())));

  it('never follows an API redirect, so the token cannot travel to another origin', async () => {
    for (const auth of ['personal', 'oauth'] as const) {
      const o = await rig({ auth, api_token: auth === 'oauth' ? r.fake.oauthToken : r.fake.token });
      try {
        const port = (elsewhere.address() as AddressInfo).port;
        o.fake.setMode({ kind: 'redirect', location: `http://127.0.0.1:${port}/v1/teams/1/projects` });
        await expect(call(o.core, 'figma_list_projects', {})).rejects.toMatchObject({
          code: 'figma_upstream',
          message: expect.stringContaining('redirect'),
        });
      } finally {
        await o.close();
      }
    }
    expect(seen).toEqual([]);
  });
});

describe('worker-mode logging', () => {
  it('reports server errors, retries and network failures through the worker logger, without the token', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as never);
        done();
      },
    });
    const kind = createFigmaKind(r.config);
    const worker = await startWorker(
      kind,
      { workspace: r.workspace, figma_config: r.config.figma_config },
      { logger: pino({ level: 'debug' }, sink) },
    );
    try {
      r.fake.setMode({ kind: 'server_error' }, { times: 1 });
      await kind.core.call(
        'figma_list_files',
        { project_id: '101' },
        { signal: new AbortController().signal },
      );
      r.fake.setMode({ kind: 'network_error' }, { times: 1 });
      await kind.core.call(
        'figma_list_files',
        { project_id: '102' },
        { signal: new AbortController().signal },
      );
      r.fake.setMode({ kind: 'not_found' }, { times: 1 });
      await kind.core
        .call('figma_list_files', { project_id: '103' }, { signal: new AbortController().signal })
        .catch(() => undefined);
    } finally {
      await worker.stop();
    }
    const figma = lines.filter((l) => l.component === 'figma-client');
    const msgs = figma.map((l) => l.msg);
    expect(msgs).toEqual(
      expect.arrayContaining([
        'figma answered a server error',
        'figma request: retrying after a backoff',
        'figma request failed',
        'figma request refused',
      ]),
    );
    expect(figma.find((l) => l.msg === 'figma answered a server error')).toMatchObject({
      endpoint: 'project_files',
      status: 500,
    });
    const all = JSON.stringify(lines);
    expect(all).not.toContain(r.fake.token);
  });
});
