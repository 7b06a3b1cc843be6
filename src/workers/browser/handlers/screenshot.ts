/**
 * `screenshot`: a URL or raw HTML → PNG/JPEG bytes as an artifact (intact, with their sha256), plus where the
 * page ended up. Viewport, device scale, full page, clip, one element, wait conditions, hidden selectors.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { imageSize } from '../image-info.js';
import { runPageScript } from '../page-script.js';
import { withPage, type BrowserKindDeps, type PageSession } from '../page-session.js';
import {
  PageOptionsShape,
  TargetShape,
  contextOptionsOf,
  requireTarget,
  taskTypeField,
  waitOptionsOf,
} from '../payload.js';

export const ScreenshotOptionsSchema = z
  .object({
    ...PageOptionsShape,
    fullPage: z.boolean().optional(),
    clip: z
      .object({
        x: z.number().min(0),
        y: z.number().min(0),
        width: z.number().positive().max(16384),
        height: z.number().positive().max(16384),
      })
      .optional(),
    format: z.enum(['png', 'jpeg']).optional(),
    /** JPEG only, 0-100. */
    quality: z.number().int().min(0).max(100).optional(),
    /** Hidden (visibility: hidden) while the shot is taken: cookie banners, ads, clocks. */
    hideSelectors: z.array(z.string().min(1).max(1000)).max(100).optional(),
    omitBackground: z.boolean().optional(),
    disableAnimations: z.boolean().optional(),
  })
  .strict();

export const ScreenshotPayloadSchema = requireTarget(
  z
    .object({
      taskType: taskTypeField('screenshot'),
      ...TargetShape,
      /** Capture only this element. */
      selector: z.string().min(1).max(2000).optional(),
      /** Runs in the page before the capture. */
      script: z.string().min(1).max(1_000_000).optional(),
      options: ScreenshotOptionsSchema.optional(),
    })
    .strict(),
);

export type ScreenshotPayload = z.output<typeof ScreenshotPayloadSchema>;
export type ScreenshotOptions = z.output<typeof ScreenshotOptionsSchema>;

/** CSS that hides the given selectors; braces are stripped so a selector cannot close the rule. */
export function hideCss(selectors: string[] | undefined): string | undefined {
  if (!selectors?.length) return undefined;
  return selectors.map((s) => `${s.replace(/[{}]/g, '')} { visibility: hidden !important; }`).join('\n');
}

/** Takes a shot of the current page (used here and by automation/testing steps). */
export async function capture(
  session: PageSession,
  o: Pick<
    ScreenshotOptions,
    'fullPage' | 'clip' | 'format' | 'quality' | 'hideSelectors' | 'omitBackground' | 'disableAnimations'
  >,
  selector?: string,
): Promise<{ data: Buffer; contentType: string; ext: string }> {
  const type = o.format ?? 'png';
  if (o.quality !== undefined && type !== 'jpeg')
    throw new FleetError('invalid_payload', 'options.quality applies to jpeg only');
  const common = {
    type,
    timeout: session.timeout(),
    ...(o.quality !== undefined ? { quality: o.quality } : {}),
    ...(o.omitBackground !== undefined ? { omitBackground: o.omitBackground } : {}),
    ...(o.disableAnimations ? { animations: 'disabled' as const } : {}),
    ...(hideCss(o.hideSelectors) ? { style: hideCss(o.hideSelectors) } : {}),
  };
  let data: Buffer;
  try {
    if (selector) {
      const el = session.page.locator(selector).first();
      try {
        await el.waitFor({ state: 'visible', timeout: session.timeout() });
      } catch (err) {
        throw session.selectorError(err, selector);
      }
      data = await el.screenshot(common);
    } else {
      data = await session.page.screenshot({
        ...common,
        ...(o.fullPage !== undefined ? { fullPage: o.fullPage } : {}),
        ...(o.clip ? { clip: o.clip } : {}),
      });
    }
  } catch (err) {
    throw session.classify(err);
  }
  if (data.length > session.deps.limits.max_output_bytes) {
    throw new FleetError(
      'payload_too_large',
      `the screenshot is ${data.length} bytes, over the ${session.deps.limits.max_output_bytes}-byte cap`,
    );
  }
  return {
    data,
    contentType: type === 'png' ? 'image/png' : 'image/jpeg',
    ext: type === 'png' ? 'png' : 'jpg',
  };
}

export function createScreenshotHandler(deps: BrowserKindDeps): TaskHandler<ScreenshotPayload> {
  return {
    capability: 'screenshot',
    description:
      'Render a URL or raw HTML in headless Chromium and return a PNG or JPEG (viewport, full page, clip or one element).',
    payloadSchema: ScreenshotPayloadSchema,
    async run(payload, ctx) {
      const o = payload.options ?? {};
      return withPage(deps, ctx, contextOptionsOf(o), async (session) => {
        ctx.progress({ percent: 10, message: 'loading page' });
        const nav = await session.open(payload, waitOptionsOf(o));
        let scriptResult: unknown;
        if (payload.script) scriptResult = await runPageScript(session, payload.script);
        ctx.progress({ percent: 70, message: 'capturing' });
        const shot = await capture(session, o, payload.selector);
        const title = await session.page.title().catch(() => '');
        return {
          output: {
            url: payload.url ?? null,
            finalUrl: nav.finalUrl,
            status: nav.status ?? null,
            title,
            format: shot.ext === 'png' ? 'png' : 'jpeg',
            contentType: shot.contentType,
            bytes: shot.data.length,
            sha256: createHash('sha256').update(shot.data).digest('hex'),
            ...imageSize(shot.data),
            ...(scriptResult !== undefined ? { scriptResult } : {}),
            blocked: session.blocked(),
          },
          artifacts: [{ name: `screenshot.${shot.ext}`, contentType: shot.contentType, data: shot.data }],
        };
      });
    },
  };
}
