/**
 * `web-automation` (the spec's task type `automation`): a list of steps with per-step results. A failed step
 * stops the run; by default the task then fails with the step's error code (step_failed, selector_not_found,
 * script_error, navigation_failed) and the report — step results plus a PNG of the page at the failure, base64 —
 * in the error's details. With `options.onStepError: "report"` the task succeeds with `ok: false` and the
 * failure screenshot as an artifact instead.
 *
 * `options.downloads: { accept: true, maxBytes? }` lets a step (a click on a file link) download: each file is an
 * artifact and a `downloads` entry (see `downloads.ts`); without it a download is refused and listed as such.
 */
import { z } from 'zod';
import { DownloadReportSchema, StepResultSchema, blocked, scriptResult } from '../results.js';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { capJson, runPageScript } from '../page-script.js';
import { DownloadsOptionSchema } from '../downloads.js';
import { withPage, type BrowserKindDeps } from '../page-session.js';
import {
  PageOptionsShape,
  TargetShape,
  contextOptionsOf,
  optionalTarget,
  waitOptionsOf,
} from '../payload.js';
import { StepSchema, failureShot, runSteps } from '../steps.js';

export const AutomationPayloadSchema = optionalTarget(
  z
    .object({
      taskType: z.enum(['automation', 'web-automation']).optional(),
      /** Optional start page; steps may also begin with `goto`. */
      ...TargetShape,
      steps: z.array(StepSchema).min(1),
      /** Runs in the page after the last step; its result comes back as `scriptResult`. */
      script: z.string().min(1).max(1_000_000).optional(),
      options: z
        .object({
          ...PageOptionsShape,
          onStepError: z.enum(['fail', 'report']).optional(),
          downloads: DownloadsOptionSchema.optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
);

export type AutomationPayload = z.output<typeof AutomationPayloadSchema>;

/** Failure screenshots travel in error details only up to this size (larger: use onStepError "report"). */
const MAX_INLINE_SHOT = 512 * 1024;

const AutomationBase = {
  finalUrl: z.string(),
  title: z.string(),
  durationMs: z.number(),
  steps: z.array(StepResultSchema),
  downloads: z.array(DownloadReportSchema),
  blocked,
};

/** ok: every step ran; not ok (with onStepError "report"): the first failing step and its error. */
export const AutomationResultSchema = z.union([
  z.object({ ok: z.literal(true), ...AutomationBase, scriptResult }),
  z.object({
    ok: z.literal(false),
    failedStep: z.number().optional(),
    error: z.object({ code: z.string(), message: z.string() }),
    ...AutomationBase,
  }),
]);
export type AutomationResult = z.infer<typeof AutomationResultSchema>;

export function createAutomationHandler(
  deps: BrowserKindDeps,
): TaskHandler<AutomationPayload, AutomationResult> {
  return {
    capability: 'web-automation',
    description:
      'Drive a page through steps (goto, click, fill, type, press, select, check, hover, waits, scroll, evaluate, screenshot) and report each step, with a screenshot of a failing one.',
    payloadSchema: AutomationPayloadSchema,
    resultSchema: AutomationResultSchema,
    async run(payload, ctx) {
      if (payload.steps.length > deps.limits.max_steps) {
        throw new FleetError(
          'payload_too_large',
          `${payload.steps.length} steps, over the cap of ${deps.limits.max_steps}`,
        );
      }
      const o = payload.options ?? {};
      const contextOptions = { ...contextOptionsOf(o), downloads: o.downloads };
      return withPage(deps, ctx, contextOptions, async (session) => {
        const started = Date.now();
        if (payload.url !== undefined || payload.html !== undefined)
          await session.open(payload, waitOptionsOf(o));
        const run = await runSteps(session, payload.steps, (done, total) =>
          ctx.progress({ percent: Math.round((done / total) * 90), message: `step ${done}/${total}` }),
        );
        const dl = await session.downloads.finish();
        const base = {
          finalUrl: session.page.url(),
          title: await session.page.title().catch(() => ''),
          durationMs: Date.now() - started,
          steps: run.steps,
          downloads: dl.downloads,
          blocked: session.blocked(),
        };
        if (run.error) {
          const shot = await failureShot(session, `failure-step-${run.failedStep}.png`);
          if (o.onStepError === 'report') {
            return {
              output: capJson(
                {
                  ok: false,
                  failedStep: run.failedStep,
                  error: { code: run.error.code, message: run.error.message },
                  ...base,
                },
                deps.limits.max_output_bytes,
                'the automation report',
              ),
              artifacts: [...run.artifacts, ...dl.artifacts, ...(shot ? [shot] : [])],
            };
          }
          throw new FleetError(
            run.error.code,
            `step ${run.failedStep} (${payload.steps[run.failedStep!]?.action}) failed: ${run.error.message}`,
            {
              retryable: run.error.retryable,
              details: {
                failedStep: run.failedStep,
                ...base,
                ...(shot && shot.data.length <= MAX_INLINE_SHOT
                  ? {
                      screenshot: {
                        name: shot.name,
                        contentType: shot.contentType,
                        base64: shot.data.toString('base64'),
                      },
                    }
                  : {}),
              },
            },
          );
        }
        const scriptResult = payload.script ? await runPageScript(session, payload.script) : undefined;
        return {
          output: capJson(
            { ok: true, ...base, ...(scriptResult !== undefined ? { scriptResult } : {}) },
            deps.limits.max_output_bytes,
            'the automation report',
          ),
          artifacts: [...run.artifacts, ...dl.artifacts],
        };
      });
    },
  };
}
