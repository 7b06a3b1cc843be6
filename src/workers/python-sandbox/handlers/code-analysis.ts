/**
 * `code-analysis`: parses code without running it, in a dedicated sandboxed interpreter (the parser
 * itself faces hostile input). Returns syntax errors with line/column, imports, top-level definitions
 * with signatures and docstrings, McCabe complexity per function, undefined names and unused imports
 * (pyflakes when installed, `pyflakes: true`), and a security lint of risky calls.
 */
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
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

// The analyser runs in the sandbox: its report is parsed against this, not trusted. Entries are loose (the
// analyser may say more about a finding); the lists themselves are what every report has.
const line = z.number().nullable();
const FunctionInfoSchema = z.looseObject({
  name: z.string(),
  line,
  endLine: line.optional(),
  signature: z.string(),
  docstring: z.string().nullable(),
  async: z.boolean(),
  decorators: z.array(z.string()),
});
const FindingSchema = z.looseObject({ line, column: line.optional(), message: z.string() });
const ComplexitySchema = z.looseObject({ name: z.string(), line, complexity: z.number() });

/** The analyser's own report (runner-source.ts `_analyze`). */
const AnalysisReportSchema = z.object({
  syntaxErrors: z.array(
    z.looseObject({ type: z.string(), message: z.string(), line, column: line.optional() }),
  ),
  imports: z.array(
    z.looseObject({
      module: z.string(),
      name: z.string().nullable(),
      alias: z.string().nullable(),
      line,
      level: z.number(),
    }),
  ),
  functions: z.array(FunctionInfoSchema),
  classes: z.array(
    z.looseObject({
      name: z.string(),
      line,
      endLine: line.optional(),
      bases: z.array(z.string()),
      docstring: z.string().nullable(),
      decorators: z.array(z.string()),
      methods: z.array(FunctionInfoSchema),
    }),
  ),
  variables: z.array(z.looseObject({ name: z.string(), line })),
  complexity: z.array(ComplexitySchema).describe('McCabe complexity per function'),
  undefinedNames: z.array(FindingSchema),
  unusedImports: z.array(FindingSchema),
  warnings: z.array(FindingSchema),
  security: z.array(
    z.looseObject({
      rule: z.string(),
      severity: z.string(),
      line,
      column: line.optional(),
      message: z.string(),
    }),
  ),
  pyflakes: z.boolean().describe('whether pyflakes was available for undefined names and unused imports'),
  lines: z.number(),
});

export const CodeAnalysisResultSchema = AnalysisReportSchema.extend({
  valid: z.boolean().describe('no syntax errors'),
  complexFunctions: z.array(ComplexitySchema).describe('functions above complexityThreshold'),
});
export type CodeAnalysisResult = z.infer<typeof CodeAnalysisResultSchema>;

export function createCodeAnalysisHandler(
  services: SandboxServices,
): TaskHandler<CodeAnalysisPayload, CodeAnalysisResult> {
  return {
    capability: 'code-analysis',
    description:
      'Analyses Python code without running it: syntax errors, imports, definitions with signatures and docstrings, complexity, undefined names, unused imports and risky calls.',
    payloadSchema: CodeAnalysisPayloadSchema,
    resultSchema: CodeAnalysisResultSchema,
    idempotent: true,
    readOnly: true,
    async run(payload, ctx) {
      const timeoutMs = Math.max(1000, Math.min(30_000, ctx.deadline - Date.now() - 100));
      const raw = await services.runtime.analyze(payload.code, timeoutMs);
      const parsed = AnalysisReportSchema.safeParse(raw);
      if (!parsed.success) {
        throw new FleetError('handler_error', 'the analyser answered with a report of an unexpected shape', {
          details: {
            issues: parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`),
          },
        });
      }
      const report = parsed.data;
      return {
        output: {
          ...report,
          valid: report.syntaxErrors.length === 0,
          complexFunctions: report.complexity.filter((c) => c.complexity > payload.complexityThreshold),
        },
      };
    },
  };
}
