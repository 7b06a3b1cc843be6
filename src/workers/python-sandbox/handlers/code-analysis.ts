/**
 * `code-analysis`: parses code without running it, in a dedicated sandboxed interpreter (the parser
 * itself faces hostile input). Returns syntax errors with line/column, imports, top-level definitions
 * with signatures and docstrings, McCabe complexity per function, undefined names and unused imports
 * (pyflakes when installed, `pyflakes: true`), and a security lint of risky calls.
 */
import { z } from 'zod';
import type { TaskHandler } from '../../common/worker-kind.js';
import type { SandboxServices } from '../services.js';

export const CodeAnalysisPayloadSchema = z
  .object({
    code: z.string().max(1_000_000),
    /** Functions above it are listed in `complexFunctions`. */
    complexityThreshold: z.number().int().positive().default(10),
  })
  .strict();

export type CodeAnalysisPayload = z.infer<typeof CodeAnalysisPayloadSchema>;

export function createCodeAnalysisHandler(services: SandboxServices): TaskHandler<CodeAnalysisPayload> {
  return {
    capability: 'code-analysis',
    description:
      'Analyses Python code without running it: syntax errors, imports, definitions with signatures and docstrings, complexity, undefined names, unused imports and risky calls.',
    payloadSchema: CodeAnalysisPayloadSchema,
    idempotent: true,
    readOnly: true,
    async run(payload, ctx) {
      const timeoutMs = Math.max(1000, Math.min(30_000, ctx.deadline - Date.now() - 100));
      const result = await services.runtime.analyze(payload.code, timeoutMs);
      const complexity = Array.isArray(result.complexity)
        ? (result.complexity as { complexity: number }[])
        : [];
      const syntaxErrors = Array.isArray(result.syntaxErrors) ? result.syntaxErrors : [];
      return {
        output: {
          valid: syntaxErrors.length === 0,
          ...result,
          complexFunctions: complexity.filter((c) => c.complexity > payload.complexityThreshold),
        },
      };
    },
  };
}
