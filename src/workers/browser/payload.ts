/**
 * The parts of a browser task payload every task type shares, in the spec's `BrowserTask` shape:
 * `{ taskType?, url?, html?, selector?, script?, options? }`. `taskType`, when given, must name the handler it
 * was sent to (a caller that routes by capability may still send the spec's field). Caps that are about size
 * (HTML, files) answer `payload_too_large`, not `invalid_payload`, so they are checked in the handlers.
 */
import { z } from 'zod';

export const WaitUntilSchema = z.enum(['load', 'domcontentloaded', 'networkidle', 'commit']);

export const ViewportSchema = z.object({
  width: z.number().int().min(1).max(8192),
  height: z.number().int().min(1).max(8192),
});

/** Options shared by every task type that opens a page. */
export const PageOptionsShape = {
  viewport: ViewportSchema.optional(),
  deviceScaleFactor: z.number().min(0.1).max(4).optional(),
  userAgent: z.string().max(1000).optional(),
  locale: z.string().max(50).optional(),
  timezoneId: z.string().max(100).optional(),
  colorScheme: z.enum(['light', 'dark']).optional(),
  javaScriptEnabled: z.boolean().optional(),
  extraHTTPHeaders: z.record(z.string(), z.string().max(8192)).optional(),
  /** Navigation is done when this event fires (default `load`). */
  waitUntil: WaitUntilSchema.optional(),
  /** Then wait for this selector to be visible. */
  waitForSelector: z.string().min(1).max(2000).optional(),
  /** Then wait for this in-page expression to be truthy. */
  waitForFunction: z.string().min(1).max(100_000).optional(),
  /** Then wait for the network to be idle (no request for 500 ms). */
  waitForNetworkIdle: z.boolean().optional(),
  /** Then wait this long (ms). */
  delayMs: z.number().int().min(0).max(60_000).optional(),
  /** Cap for the selector/function waits (ms); the task's deadline always applies. */
  waitTimeoutMs: z.number().int().positive().max(600_000).optional(),
  /** Accept an HTTP error status of the target (4xx/5xx) instead of failing with navigation_failed. */
  allowErrorStatus: z.boolean().optional(),
  /**
   * Let the manager retry when this task's own page crashes or hangs (`page_crashed`/`page_unresponsive` are then
   * retryable). Off by default: a hostile page would only run again.
   */
  retryPageFailures: z.boolean().optional(),
};

export function taskTypeField(name: string) {
  return z.literal(name).optional();
}

/** url or html, not both, not neither. */
export function requireTarget<T extends { url?: string | undefined; html?: string | undefined }>(
  schema: z.ZodType<T>,
) {
  return schema.superRefine((v, ctx) => {
    if ((v.url === undefined) === (v.html === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of url or html', path: ['url'] });
    }
  });
}

/** url or html, not both; neither is allowed (steps may navigate themselves). */
export function optionalTarget<T extends { url?: string | undefined; html?: string | undefined }>(
  schema: z.ZodType<T>,
) {
  return schema.superRefine((v, ctx) => {
    if (v.url !== undefined && v.html !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'give url or html, not both', path: ['url'] });
    }
  });
}

export const TargetShape = {
  url: z.string().min(1).max(8192).optional(),
  /** Raw HTML to render (served from an http origin inside the worker's proxy). */
  html: z.string().optional(),
};

export type PageOptions = {
  [K in keyof typeof PageOptionsShape]?: z.output<(typeof PageOptionsShape)[K]>;
};

export function contextOptionsOf(o: PageOptions | undefined) {
  return {
    viewport: o?.viewport,
    deviceScaleFactor: o?.deviceScaleFactor,
    userAgent: o?.userAgent,
    locale: o?.locale,
    timezoneId: o?.timezoneId,
    javaScriptEnabled: o?.javaScriptEnabled,
    extraHTTPHeaders: o?.extraHTTPHeaders,
    colorScheme: o?.colorScheme,
    retryPageFailures: o?.retryPageFailures,
  };
}

export function waitOptionsOf(o: PageOptions | undefined) {
  return {
    waitUntil: o?.waitUntil,
    waitForSelector: o?.waitForSelector,
    waitForFunction: o?.waitForFunction,
    waitForNetworkIdle: o?.waitForNetworkIdle,
    delayMs: o?.delayMs,
    selectorTimeoutMs: o?.waitTimeoutMs,
    allowErrorStatus: o?.allowErrorStatus,
  };
}
