/**
 * Automation steps, shared by `web-automation` and `testing`. Each step is bounded by its own timeout and the
 * task's deadline, and reports `{ index, action, ok, durationMs, result?, error? }`. Scripts (`evaluate`) run in
 * the page. A failed step stops the run unless it is `optional`.
 */
import { z } from 'zod';
import { FleetError, toFleetError } from '../../protocol/errors.js';
import type { Artifact } from '../common/worker-kind.js';
import { capture } from './handlers/screenshot.js';
import { runPageScript } from './page-script.js';
import type { PageSession } from './page-session.js';
import { WaitUntilSchema } from './payload.js';

const Sel = z.string().min(1).max(2000);
const common = {
  /** Cap for this step (ms); the task's deadline always applies. */
  timeoutMs: z.number().int().positive().max(600_000).optional(),
  /** A failure is recorded but does not stop the run. */
  optional: z.boolean().optional(),
  name: z.string().max(200).optional(),
};

export const StepSchema = z.discriminatedUnion('action', [
  z
    .object({
      action: z.literal('goto'),
      url: z.string().min(1).max(8192),
      waitUntil: WaitUntilSchema.optional(),
      ...common,
    })
    .strict(),
  z
    .object({
      action: z.literal('click'),
      selector: Sel,
      button: z.enum(['left', 'right', 'middle']).optional(),
      clickCount: z.number().int().min(1).max(3).optional(),
      ...common,
    })
    .strict(),
  z
    .object({ action: z.literal('fill'), selector: Sel, value: z.string().max(1_000_000), ...common })
    .strict(),
  z
    .object({
      action: z.literal('type'),
      selector: Sel,
      text: z.string().max(100_000),
      delayMs: z.number().int().min(0).max(1000).optional(),
      ...common,
    })
    .strict(),
  z
    .object({
      action: z.literal('press'),
      selector: Sel.optional(),
      key: z.string().min(1).max(100),
      ...common,
    })
    .strict(),
  z
    .object({
      action: z.literal('select'),
      selector: Sel,
      value: z.union([z.string(), z.array(z.string()).max(1000)]),
      ...common,
    })
    .strict(),
  z
    .object({ action: z.literal('check'), selector: Sel, checked: z.boolean().optional(), ...common })
    .strict(),
  z.object({ action: z.literal('uncheck'), selector: Sel, ...common }).strict(),
  z.object({ action: z.literal('hover'), selector: Sel, ...common }).strict(),
  z
    .object({
      action: z.literal('waitForSelector'),
      selector: Sel,
      state: z.enum(['attached', 'detached', 'visible', 'hidden']).optional(),
      ...common,
    })
    .strict(),
  /** `url`: exact URL or a glob (`**\/done*`). */
  z.object({ action: z.literal('waitForUrl'), url: z.string().min(1).max(8192), ...common }).strict(),
  z
    .object({
      action: z.literal('waitForLoad'),
      state: z.enum(['load', 'domcontentloaded', 'networkidle']).optional(),
      ...common,
    })
    .strict(),
  z.object({ action: z.literal('wait'), ms: z.number().int().min(0).max(60_000), ...common }).strict(),
  /**
   * The n-th `waitForDownload` waits until the task's n-th download has started (a click on an `<a download>`
   * or a script's download does not navigate, so the click step returns before it).
   */
  z.object({ action: z.literal('waitForDownload'), ...common }).strict(),
  z
    .object({
      action: z.literal('scroll'),
      selector: Sel.optional(),
      to: z.enum(['top', 'bottom']).optional(),
      x: z.number().optional(),
      y: z.number().optional(),
      ...common,
    })
    .strict(),
  z
    .object({
      action: z.literal('evaluate'),
      script: z.string().min(1).max(1_000_000),
      arg: z.unknown().optional(),
      ...common,
    })
    .strict(),
  z
    .object({
      action: z.literal('screenshot'),
      selector: Sel.optional(),
      fullPage: z.boolean().optional(),
      format: z.enum(['png', 'jpeg']).optional(),
      quality: z.number().int().min(0).max(100).optional(),
      ...common,
    })
    .strict(),
]);

export type Step = z.output<typeof StepSchema>;

export interface StepResult {
  index: number;
  action: Step['action'];
  name?: string;
  ok: boolean;
  durationMs: number;
  result?: unknown;
  error?: { code: string; message: string };
}

export interface StepRun {
  steps: StepResult[];
  /** Index of the first non-optional failed step. */
  failedStep: number | undefined;
  error: FleetError | undefined;
  artifacts: Artifact[];
}

/** Errors that end the task rather than a step: the page/browser is gone or the deadline passed. */
export function isFatal(err: FleetError): boolean {
  return ['timeout', 'cancelled', 'browser_crashed', 'url_blocked', 'payload_too_large'].includes(err.code);
}

async function runOne(
  session: PageSession,
  step: Step,
  artifacts: Artifact[],
  index: number,
): Promise<unknown> {
  const page = session.page;
  const t = session.timeout(step.timeoutMs);
  const sel = 'selector' in step ? step.selector : undefined;
  const act = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw sel ? session.selectorError(err, sel) : session.classify(err, 'step_failed');
    }
  };
  switch (step.action) {
    case 'goto': {
      const url = (await session.deps.policy.assertNavigable(step.url)).href;
      const resp = await session.goto(url, step.waitUntil ?? 'load', false);
      return { url: page.url(), status: resp?.status() ?? null };
    }
    case 'click':
      await act(() =>
        page
          .locator(step.selector)
          .first()
          .click({
            timeout: t,
            ...(step.button ? { button: step.button } : {}),
            ...(step.clickCount ? { clickCount: step.clickCount } : {}),
          }),
      );
      return undefined;
    case 'fill':
      await act(() => page.locator(step.selector).first().fill(step.value, { timeout: t }));
      return undefined;
    case 'type':
      await act(() =>
        page
          .locator(step.selector)
          .first()
          .pressSequentially(step.text, { timeout: t, ...(step.delayMs ? { delay: step.delayMs } : {}) }),
      );
      return undefined;
    case 'press':
      if (step.selector) {
        const s = step.selector;
        await act(() => page.locator(s).first().press(step.key, { timeout: t }));
      } else await act(() => page.keyboard.press(step.key));
      return undefined;
    case 'select':
      return {
        selected: await act(() =>
          page.locator(step.selector).first().selectOption(step.value, { timeout: t }),
        ),
      };
    case 'check':
      await act(() =>
        page
          .locator(step.selector)
          .first()
          .setChecked(step.checked ?? true, { timeout: t }),
      );
      return undefined;
    case 'uncheck':
      await act(() => page.locator(step.selector).first().setChecked(false, { timeout: t }));
      return undefined;
    case 'hover':
      await act(() => page.locator(step.selector).first().hover({ timeout: t }));
      return undefined;
    case 'waitForSelector':
      await act(() =>
        page
          .locator(step.selector)
          .first()
          .waitFor({ state: step.state ?? 'visible', timeout: t }),
      );
      return undefined;
    case 'waitForUrl':
      try {
        await page.waitForURL(step.url, { timeout: t, waitUntil: 'commit' });
      } catch (err) {
        const e = session.classify(err, 'step_failed');
        throw e.code === 'step_failed'
          ? new FleetError('step_failed', `the URL did not become ${step.url} (it is ${page.url()})`)
          : e;
      }
      return { url: page.url() };
    case 'waitForLoad':
      await act(() => page.waitForLoadState(step.state ?? 'load', { timeout: t }));
      return undefined;
    case 'wait':
      await page.waitForTimeout(Math.min(step.ms, session.remaining()));
      return undefined;
    case 'waitForDownload': {
      const hit = await session.downloads.waitForNext(t);
      session.throwIfViolated();
      if (!hit) throw new FleetError('step_failed', `no download started within ${t} ms`);
      return hit;
    }
    case 'scroll':
      if (step.selector) {
        const s = step.selector;
        await act(() => page.locator(s).first().scrollIntoViewIfNeeded({ timeout: t }));
      } else {
        try {
          await page.evaluate(
            (a: { to: string | null; x: number | null; y: number | null }) => {
              if (a.to === 'bottom') window.scrollTo(0, document.documentElement.scrollHeight);
              else if (a.to === 'top') window.scrollTo(0, 0);
              else window.scrollBy(a.x ?? 0, a.y ?? 0);
            },
            { to: step.to ?? null, x: step.x ?? null, y: step.y ?? null },
          );
        } catch (err) {
          throw session.classify(err, 'step_failed');
        }
      }
      return page
        .evaluate(() => ({ scrollX: window.scrollX, scrollY: window.scrollY }))
        .catch(() => undefined);
    case 'evaluate':
      return runPageScript(session, step.script, step.arg);
    case 'screenshot': {
      const shot = await capture(
        session,
        { fullPage: step.fullPage, format: step.format, quality: step.quality },
        step.selector,
      );
      const name = `step-${index}${step.name ? `-${step.name.replace(/[^\w.-]+/g, '_')}` : ''}.${shot.ext}`;
      artifacts.push({ name, contentType: shot.contentType, data: shot.data });
      return { artifact: name, bytes: shot.data.length };
    }
  }
}

export async function runSteps(
  session: PageSession,
  steps: Step[],
  onStep?: (done: number, total: number) => void,
): Promise<StepRun> {
  const results: StepResult[] = [];
  const artifacts: Artifact[] = [];
  for (const [index, step] of steps.entries()) {
    const started = Date.now();
    try {
      const result = await runOne(session, step, artifacts, index);
      session.throwIfViolated();
      results.push({
        index,
        action: step.action,
        ...(step.name ? { name: step.name } : {}),
        ok: true,
        durationMs: Date.now() - started,
        ...(result !== undefined ? { result } : {}),
      });
    } catch (raw) {
      const err = toFleetError(raw, 'step_failed');
      results.push({
        index,
        action: step.action,
        ...(step.name ? { name: step.name } : {}),
        ok: false,
        durationMs: Date.now() - started,
        error: { code: err.code, message: err.message },
      });
      if (isFatal(err)) throw err;
      if (!step.optional) return { steps: results, failedStep: index, error: err, artifacts };
    }
    onStep?.(index + 1, steps.length);
  }
  return { steps: results, failedStep: undefined, error: undefined, artifacts };
}

/** A viewport JPEG of the page as it is now, for a failure report; undefined if the page cannot be captured. */
export async function failureShot(session: PageSession, name: string): Promise<Artifact | undefined> {
  try {
    const data = await session.page.screenshot({ type: 'png', timeout: Math.min(5000, session.remaining()) });
    return { name, contentType: 'image/png', data };
  } catch {
    return undefined;
  }
}
