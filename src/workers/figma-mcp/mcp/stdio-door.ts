/**
 * MCP over stdio, for desktop MCP clients that launch `fleet worker figma --stdio`. stdout carries only
 * protocol frames; logs go to stderr.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { FigmaCore } from '../core/figma-core.js';
import { buildMcpServer } from './mcp-server.js';

export async function serveStdio(
  core: FigmaCore,
  version: string,
  io: { stdin?: NodeJS.ReadableStream; stdout?: NodeJS.WritableStream } = {},
): Promise<{ close(): Promise<void> }> {
  const server = buildMcpServer(core, version);
  const transport = new StdioServerTransport(io.stdin as never, io.stdout as never);
  await server.connect(transport);
  return { close: () => server.close() };
}
