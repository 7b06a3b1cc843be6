/**
 * A worker's self-description for its `hello` (issue 18): each handler's zod schemas turned into JSON Schema
 * with zod's own generator, so the catalog can never drift from what the handler really accepts.
 *
 * Payload schemas describe the *input* side (`io: 'input'`): a field with a default is optional to a caller.
 * What JSON Schema cannot express (refinements, transforms) is left out (`unrepresentable: 'any'`): the
 * manager's check is then looser than the handler's, never stricter, and the handler still has the last word.
 */
import { z } from 'zod';
import type { CapabilityDescriptor } from '../../protocol/messages.js';
import type { TaskHandler } from './worker-kind.js';

function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  return z.toJSONSchema(schema, { io, unrepresentable: 'any' });
}

/**
 * A result that is one of several objects (`anyOf`) is still an object: saying so at the top lets MCP take
 * it as a tool's outputSchema (which must be `type: object`) without changing what it accepts.
 */
function objectAtTop(schema: Record<string, unknown>): Record<string, unknown> {
  const branches = schema.anyOf ?? schema.oneOf;
  if (schema.type !== undefined || !Array.isArray(branches)) return schema;
  const allObjects = branches.every((b) => (b as { type?: unknown } | null)?.type === 'object');
  return allObjects ? { type: 'object', ...schema } : schema;
}

export function describeHandler(handler: TaskHandler<unknown>): CapabilityDescriptor {
  return {
    capability: handler.capability,
    description: handler.description,
    payloadSchema: jsonSchemaOf(handler.payloadSchema, 'input'),
    ...(handler.resultSchema
      ? { resultSchema: objectAtTop(jsonSchemaOf(handler.resultSchema, 'output')) }
      : {}),
    ...(handler.idempotent !== undefined ? { idempotent: handler.idempotent } : {}),
    ...(handler.readOnly !== undefined ? { readOnly: handler.readOnly } : {}),
    ...(handler.artifactTypes ? { artifactTypes: handler.artifactTypes } : {}),
  };
}

/** One descriptor per capability; a handler whose schema zod cannot render is left undescribed, not fatal. */
export function describeHandlers(
  handlers: Iterable<TaskHandler<unknown>>,
  onError: (capability: string, err: unknown) => void,
): CapabilityDescriptor[] {
  const out: CapabilityDescriptor[] = [];
  for (const h of handlers) {
    try {
      out.push(describeHandler(h));
    } catch (err) {
      onError(h.capability, err);
    }
  }
  return out;
}
