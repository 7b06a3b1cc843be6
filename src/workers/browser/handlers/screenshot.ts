/**
 * `screenshot`: a URL or raw HTML → PNG/JPEG bytes as an artifact (intact, with their sha256), plus where the
 * page ended up. Viewport, device scale, full page, clip, one element, wait conditions, hidden selectors.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { NavigationShape, blocked, scriptResult } from '../results.js';
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
    /**
     * Over `limits.max_screenshot_pixels`: `fail` (default) answers payload_too_large before capturing; `clip`
     * captures the top of the page (full width) that fits. Tiles: several tasks with `clip` (y offsets) and
     * `fullPage: true`.
     */
    overflow: z.enum(['fail', 'clip']).optional(),
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
    | 'fullPage'
    | 'clip'
    | 'format'
    | 'quality'
    | 'hideSelectors'
    | 'omitBackground'
    | 'disableAnimations'
    | 'overflow'
  >,
  selector?: string,
): Promise<{ data: Buffer; contentType: string; ext: string; clipped?: CapBounds }> {
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
  let clipped: CapBounds | undefined;
  try {
    if (selector) {
      const el = session.page.locator(selector).first();
      try {
        await el.waitFor({ state: 'visible', timeout: session.timeout() });
      } catch (err) {
        throw session.selectorError(err, selector);
      }
      const box = await el.boundingBox({ timeout: session.timeout() });
      if (box) await pixelCap(session, box.width, box.height, 'fail');
      data = await el.screenshot(common);
    } else {
      // A full page is captured as an explicit clip of the size checked: the page cannot grow in between.
      let region = o.clip ?? (o.fullPage ? { x: 0, y: 0, ...(await fullPageSize(session)) } : undefined);
      const size = region ?? viewportSize(session);
      const cap = await pixelCap(session, size.width, size.height, o.overflow ?? 'fail');
      if (cap.clip) {
        clipped = cap.clip;
        region = { ...(region ?? { x: 0, y: 0, width: size.width }), height: cap.clip.height };
      }
      data = await session.page.screenshot({
        ...common,
        ...(o.fullPage !== undefined || clipped ? { fullPage: o.fullPage ?? true } : {}),
        ...(region ? { clip: region } : {}),
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
    ...(clipped ? { clipped } : {}),
  };
}

export interface CapBounds {
  /** CSS pixels of the full region asked for, and the height kept. */
  width: number;
  fullHeight: number;
  height: number;
}

function viewportSize(session: PageSession): { width: number; height: number } {
  return session.page.viewportSize() ?? session.deps.defaultViewport;
}

/** The document's scroll size, as a full-page capture would take it. */
async function fullPageSize(session: PageSession): Promise<{ width: number; height: number }> {
  const vp = viewportSize(session);
  const size = await session.page.evaluate(() => {
    const d = document.documentElement;
    const b = document.body;
    return {
      width: Math.max(d.scrollWidth, d.clientWidth, b ? b.scrollWidth : 0),
      height: Math.max(d.scrollHeight, d.clientHeight, b ? b.scrollHeight : 0),
    };
  });
  return { width: Math.max(vp.width, size.width), height: Math.max(vp.height, size.height) };
}

/**
 * Checks width × height × scale² against `limits.max_screenshot_pixels` before anything is rendered. Over it:
 * `payload_too_large`, or (overflow `clip`) the height that fits.
 */
async function pixelCap(
  session: PageSession,
  width: number,
  height: number,
  overflow: 'fail' | 'clip',
): Promise<{ clip?: CapBounds }> {
  const scale = session.deviceScaleFactor;
  const limit = session.deps.limits.max_screenshot_pixels;
  const pixels = Math.ceil(width * scale) * Math.ceil(height * scale);
  if (pixels <= limit) return {};
  const fitHeight = Math.floor(limit / Math.ceil(width * scale) / scale);
  if (overflow === 'clip' && fitHeight >= 1) {
    return { clip: { width, fullHeight: Math.ceil(height), height: fitHeight } };
  }
  throw new FleetError(
    'payload_too_large',
    `the screenshot would be ${Math.ceil(width * scale)} x ${Math.ceil(height * scale)} device pixels (${pixels}), over the ${limit}-pixel cap; use options.overflow "clip", a smaller clip or deviceScaleFactor`,
    { details: { width: Math.ceil(width), height: Math.ceil(height), scale, pixels, limit } },
  );
}

/** What a screenshot returns besides the image artifact, for the catalog. */
export const ScreenshotResultSchema = z.object({
  ...NavigationShape,
  title: z.string(),
  format: z.enum(['png', 'jpeg']),
  contentType: z.string(),
  bytes: z.number(),
  sha256: z.string(),
  width: z.number().optional().describe('pixels (PNG)'),
  height: z.number().optional(),
  clipped: z
    .object({ width: z.number(), fullHeight: z.number(), height: z.number() })
    .optional()
    .describe('the full page was taller than the pixel cap: the height kept'),
  scriptResult,
  blocked,
});
export type ScreenshotResult = z.infer<typeof ScreenshotResultSchema>;

export function createScreenshotHandler(
  deps: BrowserKindDeps,
): TaskHandler<ScreenshotPayload, ScreenshotResult> {
  return {
    capability: 'screenshot',
    description:
      'Render a URL or raw HTML in headless Chromium and return a PNG or JPEG (viewport, full page, clip or one element).',
    payloadSchema: ScreenshotPayloadSchema,
    resultSchema: ScreenshotResultSchema,
    idempotent: true,
    readOnly: true,
    artifactTypes: ['image/png', 'image/jpeg'],
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
            ...(shot.clipped ? { clipped: shot.clipped } : {}),
            ...(scriptResult !== undefined ? { scriptResult } : {}),
            blocked: session.blocked(),
          },
          artifacts: [{ name: `screenshot.${shot.ext}`, contentType: shot.contentType, data: shot.data }],
        };
      });
    },
  };
}
