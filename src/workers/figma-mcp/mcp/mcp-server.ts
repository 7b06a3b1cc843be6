/**
 * The MCP face of the core: every tool registered with its zod input schema (the installed SDK 1.x takes
 * zod 4 object schemas directly). Results come back as JSON text plus `structuredContent`; exported bytes
 * as image content (PNG/JPEG) or embedded resources (SVG/PDF). Errors are tool results with `isError` and
 * the FleetError shape, so an LLM sees the code and message. Progress goes out as MCP progress
 * notifications when the caller asked for them (a progressToken).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { toFleetError } from '../../../protocol/errors.js';
import type { FigmaCore } from '../core/figma-core.js';

export const MCP_SERVER_NAME = 'fleet-figma';

export function buildMcpServer(
  core: FigmaCore,
  version: string,
  onCall?: (requestId: string | number, controller: AbortController) => () => void,
): McpServer {
  const server = new McpServer(
    { name: MCP_SERVER_NAME, version },
    {
      instructions:
        'Figma tools. Typical flow: figma_get_outline on a file URL to find node ids, then figma_get_design (read), figma_generate_code (HTML/React), figma_export_assets (images) or figma_analyze_design (audit).',
    },
  );
  for (const tool of core.tools) {
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: tool.description,
        inputSchema: tool.input,
        annotations: {
          readOnlyHint: tool.capability !== 'asset-export',
          openWorldHint: true,
          idempotentHint: true,
        },
      },
      async (args: unknown, extra): Promise<CallToolResult> => {
        const token = extra._meta?.progressToken;
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
          const result = await core.call(tool.name, args, {
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
          const fe = toFleetError(err);
          return {
            isError: true,
            content: [{ type: 'text', text: JSON.stringify({ error: fe.toJSON() }) }],
            structuredContent: { error: fe.toJSON() },
          };
        } finally {
          extra.signal.removeEventListener('abort', onAbort);
          unregister?.();
        }
      },
    );
  }
  return server;
}
