/**
 * `testing`: optional steps, then assertions → a pass/fail report per assertion with timings, and a PNG of the
 * page when anything failed. A failing assertion is a result, not an error: the task succeeds with
 * `passed: false`. Regular expressions (`matches`) are evaluated in the page, never in the worker, so a
 * catastrophic pattern can only stall the page (which the deadline closes).
 */
import { z } from 'zod';
import { StepResultSchema, blocked } from '../results.js';
import { FleetError, toFleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { capJson } from '../page-script.js';
import { withPage, type BrowserKindDeps, type PageSession } from '../page-session.js';
import {
  PageOptionsShape,
  TargetShape,
  contextOptionsOf,
  optionalTarget,
  waitOptionsOf,
} from '../payload.js';
import { StepSchema, failureShot, isFatal, runSteps } from '../steps.js';

const Sel = z.string().min(1).max(2000);
const TextMatch = {
  equals: z.string().max(100_000).optional(),
  contains: z.string().max(100_000).optional(),
  /** A JavaScript regular expression source, evaluated in the page. */
  matches: z.string().max(10_000).optional(),
};
const common = {
  /** How long to keep re-checking before declaring failure (ms, default 2000). */
  timeoutMs: z.number().int().min(0).max(60_000).optional(),
  name: z.string().max(200).optional(),
};

export const AssertionSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('textVisible'),
      text: z.string().min(1).max(100_000),
      selector: Sel.optional(),
      ...common,
    })
    .strict(),
  z.object({ type: z.literal('elementVisible'), selector: Sel, ...common }).strict(),
  z
    .object({
      type: z.literal('elementCount'),
      selector: Sel,
      equals: z.number().int().min(0).optional(),
      min: z.number().int().min(0).optional(),
      max: z.number().int().min(0).optional(),
      ...common,
    })
    .strict(),
  z.object({ type: z.literal('url'), ...TextMatch, ...common }).strict(),
  z.object({ type: z.literal('title'), ...TextMatch, ...common }).strict(),
  z.object({ type: z.literal('text'), selector: Sel, ...TextMatch, ...common }).strict(),
  z
    .object({
      type: z.literal('attribute'),
      selector: Sel,
      attribute: z.string().min(1).max(200),
      exists: z.boolean().optional(),
      ...TextMatch,
      ...common,
    })
    .strict(),
  /** Fails on console errors and uncaught page errors; `ignore` lists substrings to skip. */
  z
    .object({
      type: z.literal('noConsoleErrors'),
      ignore: z.array(z.string().max(1000)).max(100).optional(),
      ...common,
    })
    .strict(),
]);

export type Assertion = z.output<typeof AssertionSchema>;

export const TestingPayloadSchema = optionalTarget(
  z
    .object({
      taskType: z.literal('testing').optional(),
      ...TargetShape,
      steps: z.array(StepSchema).optional(),
      assertions: z.array(AssertionSchema).min(1).max(1000),
      options: z
        .object({ ...PageOptionsShape })
        .strict()
        .optional(),
    })
    .strict(),
);

export type TestingPayload = z.output<typeof TestingPayloadSchema>;

export interface AssertionResult {
  index: number;
  type: Assertion['type'];
  name?: string;
  passed: boolean;
  durationMs: number;
  message: string;
  actual?: unknown;
  expected?: unknown;
}

type Check = { passed: boolean; actual?: unknown; expected?: unknown; message: string };

async function matchText(
  session: PageSession,
  actual: string,
  a: { equals?: string | undefined; contains?: string | undefined; matches?: string | undefined },
): Promise<Check> {
  if (a.equals !== undefined && actual !== a.equals)
    return { passed: false, actual, expected: a.equals, message: 'not equal' };
  if (a.contains !== undefined && !actual.includes(a.contains))
    return {
      passed: false,
      actual,
      expected: { contains: a.contains },
      message: 'does not contain the text',
    };
  if (a.matches !== undefined) {
    let ok: boolean;
    try {
      ok = await session.page.evaluate(([s, re]) => new RegExp(re).test(s), [actual, a.matches] as const);
    } catch (err) {
      throw new FleetError(
        'invalid_payload',
        `bad regular expression ${a.matches}: ${(err as Error).message.split('\n')[0]}`,
      );
    }
    if (!ok) return { passed: false, actual, expected: { matches: a.matches }, message: 'does not match' };
  }
  return { passed: true, actual, message: 'ok' };
}

async function checkOnce(session: PageSession, a: Assertion): Promise<Check> {
  const page = session.page;
  switch (a.type) {
    case 'textVisible': {
      const scope = a.selector ? page.locator(a.selector) : page.locator('body');
      const n = await scope.getByText(a.text).filter({ visible: true }).count();
      return { passed: n > 0, actual: n, message: n > 0 ? 'visible' : `"${a.text}" is not visible` };
    }
    case 'elementVisible': {
      const n = await page.locator(a.selector).filter({ visible: true }).count();
      return {
        passed: n > 0,
        actual: n,
        message: n > 0 ? 'visible' : `no visible element matches ${a.selector}`,
      };
    }
    case 'elementCount': {
      const n = await page.locator(a.selector).count();
      const ok =
        (a.equals === undefined || n === a.equals) &&
        (a.min === undefined || n >= a.min) &&
        (a.max === undefined || n <= a.max);
      return {
        passed: ok,
        actual: n,
        expected: { equals: a.equals, min: a.min, max: a.max },
        message: ok ? 'ok' : `found ${n}`,
      };
    }
    case 'url':
      return matchText(session, page.url(), a);
    case 'title':
      return matchText(session, await page.title(), a);
    case 'text': {
      const el = page.locator(a.selector).first();
      if ((await el.count()) === 0) return { passed: false, message: `no element matches ${a.selector}` };
      return matchText(session, ((await el.textContent({ timeout: session.timeout(1000) })) ?? '').trim(), a);
    }
    case 'attribute': {
      const el = page.locator(a.selector).first();
      if ((await el.count()) === 0) return { passed: false, message: `no element matches ${a.selector}` };
      const value = await el.getAttribute(a.attribute, { timeout: session.timeout(1000) });
      if (a.exists !== undefined && (value !== null) !== a.exists) {
        return {
          passed: false,
          actual: value,
          expected: { exists: a.exists },
          message: a.exists ? 'attribute missing' : 'attribute present',
        };
      }
      if (value === null) {
        const needsValue = a.equals !== undefined || a.contains !== undefined || a.matches !== undefined;
        return needsValue
          ? { passed: false, actual: null, message: `attribute ${a.attribute} is missing` }
          : { passed: true, message: 'ok' };
      }
      return matchText(session, value, a);
    }
    case 'noConsoleErrors': {
      const ignore = a.ignore ?? [];
      const errors = [
        ...session.consoleMessages.filter((m) => m.type === 'error').map((m) => m.text),
        ...session.pageErrors,
      ].filter((t) => !ignore.some((i) => t.includes(i)));
      return {
        passed: errors.length === 0,
        actual: errors.slice(0, 20),
        message: errors.length ? `${errors.length} console error(s)` : 'ok',
      };
    }
  }
}

async function check(session: PageSession, a: Assertion): Promise<Check> {
  const until = Date.now() + Math.min(a.timeoutMs ?? 2000, session.remaining());
  for (;;) {
    let result: Check;
    try {
      result = await checkOnce(session, a);
    } catch (raw) {
      const err = raw instanceof FleetError ? raw : session.classify(raw, 'step_failed');
      if (isFatal(err) || err.code === 'invalid_payload') throw err;
      result = { passed: false, message: err.message };
    }
    if (result.passed || a.type === 'noConsoleErrors' || Date.now() >= until) return result;
    await session.page.waitForTimeout(Math.min(100, Math.max(1, until - Date.now())));
  }
}

export const TestingResultSchema = z.object({
  passed: z.boolean().describe('every step ran and every assertion passed'),
  total: z.number(),
  passedCount: z.number(),
  failedCount: z.number(),
  durationMs: z.number(),
  finalUrl: z.string(),
  steps: z.array(StepResultSchema).optional(),
  stepError: z
    .looseObject({ failedStep: z.number().optional(), code: z.string(), message: z.string() })
    .optional()
    .describe('a step failed: the assertions did not run'),
  assertions: z.array(
    z.object({
      index: z.number(),
      type: z.string(),
      name: z.string().optional(),
      passed: z.boolean(),
      durationMs: z.number(),
      message: z.string(),
      actual: z.unknown().optional(),
      expected: z.unknown().optional(),
    }),
  ),
  consoleErrors: z.array(z.string()),
  pageErrors: z.array(z.string()),
  blocked,
});
export type TestingResult = z.infer<typeof TestingResultSchema>;

export function createTestingHandler(deps: BrowserKindDeps): TaskHandler<TestingPayload, TestingResult> {
  return {
    capability: 'testing',
    description:
      'Open a page, run optional steps, then check assertions (text visible, element count, URL, title, attribute, no console errors); returns a pass/fail report with timings and a screenshot on failure.',
    payloadSchema: TestingPayloadSchema,
    resultSchema: TestingResultSchema,
    async run(payload, ctx) {
      if ((payload.steps?.length ?? 0) > deps.limits.max_steps)
        throw new FleetError('payload_too_large', `over ${deps.limits.max_steps} steps`);
      const o = payload.options ?? {};
      return withPage(deps, ctx, contextOptionsOf(o), async (session) => {
        const started = Date.now();
        if (payload.url !== undefined || payload.html !== undefined)
          await session.open(payload, waitOptionsOf(o));
        const run = payload.steps?.length ? await runSteps(session, payload.steps) : undefined;
        const results: AssertionResult[] = [];
        if (!run?.error) {
          for (const [index, a] of payload.assertions.entries()) {
            const t0 = Date.now();
            const r = await check(session, a);
            results.push({
              index,
              type: a.type,
              ...(a.name ? { name: a.name } : {}),
              durationMs: Date.now() - t0,
              ...r,
            });
            ctx.progress({
              percent: Math.round(((index + 1) / payload.assertions.length) * 90),
              message: `assertion ${index + 1}`,
            });
          }
        }
        const failed = results.filter((r) => !r.passed).length;
        const passed = !run?.error && failed === 0;
        const shot = passed ? undefined : await failureShot(session, 'failure.png');
        return {
          output: capJson(
            {
              passed,
              total: payload.assertions.length,
              passedCount: results.filter((r) => r.passed).length,
              failedCount: run?.error ? payload.assertions.length : failed,
              durationMs: Date.now() - started,
              finalUrl: session.page.url(),
              ...(run ? { steps: run.steps } : {}),
              ...(run?.error
                ? { stepError: { failedStep: run.failedStep, ...toFleetError(run.error).toJSON() } }
                : {}),
              assertions: results,
              consoleErrors: session.consoleMessages
                .filter((m) => m.type === 'error')
                .map((m) => m.text)
                .slice(0, 50),
              pageErrors: session.pageErrors.slice(0, 50),
              blocked: session.blocked(),
            },
            deps.limits.max_output_bytes,
            'the test report',
          ),
          artifacts: [...(run?.artifacts ?? []), ...(shot ? [shot] : [])],
        };
      });
    },
  };
}
