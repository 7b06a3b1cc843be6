/**
 * Finer MCP tools of workers that serve MCP themselves (the figma worker's `figma_get_design`, …), reachable
 * through the gateway: proxied to the worker's own MCP endpoint, not re-implemented here.
 *
 * A worker says where in its `info` (`mcp.http`, a path such as `/mcp`); the URL is that path on the host and
 * port the manager dialed, so a worker cannot point the manager anywhere else. Its tool list is bounded
 * (count and schema size, as the catalog bounds capabilities) and cached until the catalog changes.
 * A capability's own tool always wins a name clash.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  type CallToolResult,
  type Progress,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { FleetError } from '../../protocol/errors.js';
import { checkJsonLimits } from '../../protocol/json-limits.js';
import { SCHEMA_LIMITS } from '../catalog/capability-catalog.js';
import type { WorkerManager } from '../manager.js';

const MAX_TOOLS_PER_WORKER = 200;
const LIST_TIMEOUT_MS = 5000;

interface Target {
  workerId: string;
  url: URL;
}

export class WorkerToolProxy {
  private cache = new Map<string, Promise<Tool[]>>();
  private readonly unsubscribe: () => void;

  constructor(private readonly manager: WorkerManager) {
    this.unsubscribe = manager.subscribe(
      (e) => {
        if (e.type === 'catalog') this.cache.clear();
      },
      { types: ['catalog'] },
    );
  }

  close(): void {
    this.unsubscribe();
  }

  /** Live workers that serve MCP, by the URL derived from their endpoint. */
  private targets(): Target[] {
    const out: Target[] = [];
    for (const w of this.manager.localWorkers()) {
      // Offline covers a worker whose connection is gone (the dispatcher marks it so when it is lost).
      if (w.status === 'offline') continue;
      const path = (w.info.mcp as { http?: unknown } | undefined)?.http;
      if (typeof path !== 'string' || !/^\/[A-Za-z0-9/_.-]{0,200}$/.test(path) || path.startsWith('//'))
        continue;
      try {
        const base = new URL(w.endpoint);
        base.protocol = base.protocol === 'wss:' ? 'https:' : 'http:';
        const url = new URL(path, base.origin);
        if (url.origin !== base.origin) continue;
        out.push({ workerId: w.workerId, url });
      } catch {
        // an endpoint that is not a URL serves nothing here
      }
    }
    return out;
  }

  /** The proxied tools, one per name (the first worker serving it), minus names taken by capabilities. */
  async list(taken: ReadonlySet<string>): Promise<Tool[]> {
    const seen = new Set(taken);
    const tools: Tool[] = [];
    for (const t of this.targets()) {
      for (const tool of await this.toolsOf(t)) {
        if (seen.has(tool.name)) continue;
        seen.add(tool.name);
        tools.push(tool);
      }
    }
    return tools;
  }

  /** Calls `name` on a worker serving it; undefined when none does. */
  async call(
    name: string,
    args: Record<string, unknown> | undefined,
    options: { signal: AbortSignal; onprogress?: (p: Progress) => void },
  ): Promise<CallToolResult | undefined> {
    for (const t of this.targets()) {
      if (!(await this.toolsOf(t)).some((tool) => tool.name === name)) continue;
      const client = await this.connect(t);
      try {
        return (await client.callTool({ name, arguments: args ?? {} }, CallToolResultSchema, {
          signal: options.signal,
          // Long design reads report progress; each one keeps the call alive.
          resetTimeoutOnProgress: true,
          timeout: 10 * 60_000,
          ...(options.onprogress ? { onprogress: options.onprogress } : {}),
        })) as CallToolResult;
      } finally {
        await client.close().catch(() => undefined);
      }
    }
    return undefined;
  }

  private toolsOf(t: Target): Promise<Tool[]> {
    const key = `${t.workerId}|${t.url.href}`;
    let tools = this.cache.get(key);
    if (!tools) {
      tools = this.fetchTools(t).catch((err: unknown) => {
        this.manager.logger.warn(
          { workerId: t.workerId, url: t.url.href, err: (err as Error).message },
          "cannot list a worker's MCP tools; none proxied from it",
        );
        this.cache.delete(key);
        return [];
      });
      this.cache.set(key, tools);
    }
    return tools;
  }

  private async fetchTools(t: Target): Promise<Tool[]> {
    const client = await this.connect(t);
    try {
      const { tools } = await client.listTools(undefined, { timeout: LIST_TIMEOUT_MS });
      const kept: Tool[] = [];
      for (const tool of tools.slice(0, MAX_TOOLS_PER_WORKER)) {
        try {
          checkJsonLimits(
            tool.inputSchema,
            SCHEMA_LIMITS,
            `tool ${tool.name}'s inputSchema`,
            'capability_refused',
          );
          if (tool.outputSchema)
            checkJsonLimits(
              tool.outputSchema,
              SCHEMA_LIMITS,
              `tool ${tool.name}'s outputSchema`,
              'capability_refused',
            );
          kept.push({ ...tool, _meta: { ...tool._meta, fleet: { proxiedFrom: t.workerId } } });
        } catch (err) {
          this.manager.logger.warn(
            { workerId: t.workerId, err: (err as FleetError).message },
            'proxied tool refused',
          );
        }
      }
      return kept;
    } finally {
      await client.close().catch(() => undefined);
    }
  }

  private async connect(t: Target): Promise<Client> {
    const client = new Client({ name: 'fleet-gateway', version: '0.1.0' });
    try {
      await client.connect(new StreamableHTTPClientTransport(t.url), { timeout: LIST_TIMEOUT_MS });
    } catch (err) {
      throw new FleetError(
        'worker_lost',
        `cannot reach the MCP endpoint of worker ${t.workerId}: ${(err as Error).message}`,
      );
    }
    return client;
  }
}
