/**
 * MCP over Streamable HTTP at `POST /mcp`, stateless: every POST gets a fresh server + transport, so any
 * replica can answer any request and nothing lives between requests. Answers stream as SSE so progress
 * notifications reach the client before the result.
 *
 * Cancellation: a closed connection aborts the call (closing the per-request server aborts its handlers).
 * A `notifications/cancelled` arrives on another POST with no session to tie it to the call; the door
 * keeps in-flight calls by JSON-RPC id and peer address and cancels when exactly one matches, which is
 * unambiguous for one client and a no-op (as MCP allows) when several clients reuse the same id.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { FleetError } from '../../../protocol/errors.js';
import type { FigmaCore } from '../core/figma-core.js';
import { buildMcpServer } from './mcp-server.js';

export function registerMcpRoutes(app: FastifyInstance, core: FigmaCore, version: string): void {
  const inflight = new Map<string, Set<AbortController>>();

  const cancelFromNotification = (peer: string, body: unknown): void => {
    const msgs = Array.isArray(body) ? body : [body];
    for (const m of msgs) {
      const msg = m as { method?: string; params?: { requestId?: string | number; reason?: string } };
      if (msg?.method !== 'notifications/cancelled' || msg.params?.requestId === undefined) continue;
      const set = inflight.get(`${peer}|${String(msg.params.requestId)}`);
      if (set?.size === 1)
        for (const c of set)
          c.abort(new FleetError('cancelled', msg.params.reason ?? 'cancelled by the MCP client'));
    }
  };

  app.post('/mcp', async (req: FastifyRequest, reply: FastifyReply) => {
    const peer = req.ip;
    cancelFromNotification(peer, req.body);
    const server = buildMcpServer(core, version, (requestId, controller) => {
      const key = `${peer}|${String(requestId)}`;
      let set = inflight.get(key);
      if (!set) inflight.set(key, (set = new Set()));
      set.add(controller);
      return () => {
        set.delete(controller);
        if (set.size === 0) inflight.delete(key);
      };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    reply.hijack();
    reply.raw.on('close', () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req.raw, reply.raw, req.body);
    } catch (err) {
      req.log.error({ err }, 'mcp request failed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json' });
        reply.raw.end(
          JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null }),
        );
      }
    }
  });

  const notAllowed = async (_req: FastifyRequest, reply: FastifyReply) =>
    reply
      .code(405)
      .header('allow', 'POST')
      .send({
        jsonrpc: '2.0',
        error: { code: -32000, message: 'Method not allowed: this MCP endpoint is stateless (POST only).' },
        id: null,
      });
  app.get('/mcp', notAllowed);
  app.delete('/mcp', notAllowed);
}
