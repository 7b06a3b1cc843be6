/**
 * Checks a task's output against the result schema its worker advertises (issue 18), with ajv as the
 * manager's catalog and MCP clients check it (an MCP client rejects a structuredContent that does not match
 * the tool's outputSchema, so a mismatch is a real bug). The worker tests run every real result through
 * this: the fake manager against the hello's schemas, the browser fixtures against describeHandler's.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { CapabilityDescriptor } from '../../src/protocol/messages.js';

/** Results checked per capability in this process (a test can assert its capabilities were exercised). */
export const RESULT_CHECKS = new Map<string, number>();

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false, logger: false });
const compiled = new WeakMap<object, ValidateFunction>();

/** Why `output` breaks the advertised schema, or undefined when it matches (or nothing was advertised). */
export function resultMismatch(
  describes: readonly CapabilityDescriptor[] | undefined,
  capability: string,
  output: unknown,
): string | undefined {
  const schema = describes?.find((d) => d.capability === capability)?.resultSchema;
  if (!schema) return undefined;
  let validate = compiled.get(schema);
  if (!validate) compiled.set(schema, (validate = ajv.compile(schema)));
  RESULT_CHECKS.set(capability, (RESULT_CHECKS.get(capability) ?? 0) + 1);
  if (validate(output)) return undefined;
  return `the ${capability} result does not match the resultSchema its worker advertised: ${ajv.errorsText(validate.errors, { dataVar: 'output' })}; output: ${JSON.stringify(output)?.slice(0, 1500)}`;
}
