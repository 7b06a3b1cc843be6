/**
 * The MCP face of the core, on the SDK's low-level `Server`: `tools/list` declares every tool with its
 * input schema (every argument described) and its output schema (the shape of `structuredContent`), both
 * generated from the tools' zod schemas; `tools/call` goes straight to the core. The core validates the
 * arguments, so a wrong argument answers like every other failure — a tool result with `isError` and the
 * FleetError shape as JSON text (`invalid_payload`, the message, `details.fields`) — instead of the SDK's raw -32602
 * text. Results come back as JSON text plus `structuredContent`; exported bytes as image content (PNG/JPEG)
 * or embedded resources (SVG/PDF). Progress goes out as MCP progress notifications when the caller asked
 * for them (a progressToken).
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { toFleetError } from '../../../protocol/errors.js';
import type { FigmaCore } from '../core/figma-core.js';
import type { ToolDef } from '../core/tools.js';

export const MCP_SERVER_NAME = 'fleet-figma';

/** JSON Schema draft-07, which the SDK's client validator (Ajv) reads without extra setup. */
function jsonSchema(schema: z.ZodObject, io: 'input' | 'output'): Tool['inputSchema'] {
  return z.toJSONSchema(schema, { target: 'draft-7', io }) as Tool['inputSchema'];
}

/** The `tools/list` entries; computed once per core (schemas do not change at run time). */
const listed = new WeakMap<readonly ToolDef[], Tool[]>();

export function toolList(tools: readonly ToolDef[]): Tool[] {
  let out = listed.get(tools);
  if (!out) {
    out = tools.map((tool) => ({
      name: tool.name,
      title: tool.title,
      description: tool.description,
      inputSchema: jsonSchema(tool.input, 'input'),
      outputSchema: jsonSchema(tool.output, 'output'),
      annotations: {
        title: tool.title,
        readOnlyHint: tool.capability !== 'asset-export',
        openWorldHint: true,
        idempotentHint: true,
      },
    }));
    listed.set(tools, out);
  }
  return out;
}

export function buildMcpServer(
  core: FigmaCore,
  version: string,
  onCall?: (requestId: string | number, controller: AbortController) => () => void,
): Server {
  const server = new Server(
    { name: MCP_SERVER_NAME, version },
    {
      capabilities: { tools: {} },
      instructions:
        'Figma tools. Typical flow: figma_get_outline on a file URL to find node ids, then figma_get_design (read), figma_generate_code (HTML/React), figma_export_assets (images) or figma_analyze_design (audit). Hidden layers are left out unless include_hidden is set.',
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: toolList(core.tools) }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const token = request.params._meta?.progressToken;
    let lastPercent = -1;
    const progress =
      token === undefined
        ? undefined
        : (percent: number, message: string) => {
            if (percent <= lastPercent) return;
            lastPercent = percent;
            extra
              .sendNotification({
                method: 'notifications/progress',
                params: { progressToken: token, progress: percent, total: 100, message },
              })
              .catch(() => undefined);
          };
    // A second signal the door can abort (stateless HTTP correlates cancels itself); the SDK's own
    // signal covers stdio cancels and closed connections.
    const controller = new AbortController();
    const onAbort = () => controller.abort(extra.signal.reason);
    extra.signal.addEventListener('abort', onAbort, { once: true });
    const unregister = onCall?.(extra.requestId, controller);
    try {
      const result = await core.call(request.params.name, request.params.arguments ?? {}, {
        signal: controller.signal,
        ...(progress ? { progress } : {}),
      });
      const content: CallToolResult['content'] = [{ type: 'text', text: JSON.stringify(result.output) }];
      for (const a of result.artifacts ?? []) {
        if (a.contentType === 'image/png' || a.contentType === 'image/jpeg') {
          content.push({ type: 'image', data: a.data.toString('base64'), mimeType: a.contentType });
        } else {
          content.push({
            type: 'resource',
            resource: {
              uri: `figma-asset:///${encodeURIComponent(a.name)}`,
              mimeType: a.contentType,
              blob: a.data.toString('base64'),
            },
          });
        }
      }
      return { content, structuredContent: result.output };
    } catch (err) {
      // The error travels as JSON text only: clients validate any structuredContent against the tool's
      // outputSchema, which describes a success.
      const fe = toFleetError(err);
      return { isError: true, content: [{ type: 'text', text: JSON.stringify({ error: fe.toJSON() }) }] };
    } finally {
      extra.signal.removeEventListener('abort', onAbort);
      unregister?.();
    }
  });
  return server;
}
