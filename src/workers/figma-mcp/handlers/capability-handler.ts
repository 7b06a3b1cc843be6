/**
 * The task-protocol door: one handler per capability. The payload names the tool in `operation` (full
 * name or without the `figma_` prefix; optional when the capability has one tool) and carries the tool's
 * arguments beside it, e.g. `{ operation: 'get_design', file: '<url>', node_ids: ['1:2'] }`.
 */
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import type { FigmaCore } from '../core/figma-core.js';
import type { Capability, ToolDef } from '../core/tools.js';

const PayloadSchema = z.looseObject({
  operation: z.string().min(1).max(80).optional(),
});

type FigmaPayload = z.output<typeof PayloadSchema>;
type FigmaResult = Record<string, unknown>;

/**
 * What a capability returns: the output of whichever of its tools the `operation` named, so any one of
 * their output schemas (the same ones the worker's own MCP door advertises per tool).
 */
export function capabilityResultSchema(tools: readonly ToolDef[]): z.ZodType<FigmaResult> {
  const [first, ...rest] = tools.map((t) => t.output.describe(`${t.name}: ${t.title}`));
  if (!first) throw new Error('a capability without tools');
  return rest.length === 0 ? first : z.union([first, ...rest]);
}

export function capabilityHandler(
  core: FigmaCore,
  capability: Capability,
  description: string,
): TaskHandler<FigmaPayload, FigmaResult> {
  const tools = core.tools.filter((t) => t.capability === capability);
  return {
    capability,
    description: `${description} Operations: ${tools.map((t) => t.name).join(', ')}.`,
    payloadSchema: PayloadSchema,
    resultSchema: capabilityResultSchema(tools),
    async run(payload, ctx) {
      const { operation, ...args } = payload;
      const name = operation ?? (tools.length === 1 ? tools[0]!.name : undefined);
      if (!name)
        throw new FleetError(
          'invalid_payload',
          `operation: required for ${capability} (one of ${tools.map((t) => t.name).join(', ')})`,
        );
      const tool = core.tool(name);
      if (tool.capability !== capability) {
        throw new FleetError(
          'invalid_payload',
          `operation: ${tool.name} belongs to capability ${tool.capability}, not ${capability}`,
        );
      }
      const result = await core.call(tool.name, args, {
        signal: ctx.signal,
        deadline: ctx.deadline,
        progress: (percent, message) => ctx.progress({ percent, message }),
      });
      return { output: result.output, ...(result.artifacts?.length ? { artifacts: result.artifacts } : {}) };
    },
  };
}

export function figmaHandlers(core: FigmaCore): TaskHandler<FigmaPayload, FigmaResult>[] {
  return [
    capabilityHandler(
      core,
      'figma-design',
      'Read Figma designs: team projects, project files, file outlines and simplified node designs.',
    ),
    capabilityHandler(
      core,
      'ui-generation',
      'Generate HTML/CSS and React + Tailwind code from a Figma node, deterministically.',
    ),
    capabilityHandler(
      core,
      'asset-export',
      'Export Figma nodes as PNG/JPG/SVG/PDF and download image fills.',
    ),
    capabilityHandler(
      core,
      'design-analysis',
      'Audit a Figma design: tokens, components, contrast, inconsistencies, detached styles.',
    ),
  ];
}
