/**
 * `scraping`: text, HTML, attributes and links by CSS selectors, a declarative extraction schema returning
 * JSON, page title and metadata, the final URL after redirects and the HTTP status of the target (an error
 * status fails the task with navigation_failed unless `allowErrorStatus`).
 */
import { z } from 'zod';
import { NavigationShape, blocked, scriptResult } from '../results.js';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import {
  ExtractionSchema,
  elementsInPage,
  extractInPage,
  linksInPage,
  metadataInPage,
  schemaDepth,
} from '../extract.js';
import { capJson, runPageScript } from '../page-script.js';
import { withPage, type BrowserKindDeps } from '../page-session.js';
import {
  PageOptionsShape,
  TargetShape,
  contextOptionsOf,
  requireTarget,
  taskTypeField,
  waitOptionsOf,
} from '../payload.js';

export const ScrapingPayloadSchema = requireTarget(
  z
    .object({
      taskType: taskTypeField('scraping'),
      ...TargetShape,
      /** Elements to return (text, attributes, optionally HTML). */
      selector: z.string().min(1).max(2000).optional(),
      /** Runs in the page after loading; its JSON result comes back as `scriptResult`. */
      script: z.string().min(1).max(1_000_000).optional(),
      options: z
        .object({
          ...PageOptionsShape,
          /** Named fields → JSON `data` (see extract.ts). */
          schema: ExtractionSchema.optional(),
          /** Include the HTML of matched elements (and of the page when no selector is given). */
          includeHtml: z.boolean().optional(),
          /** Include the page's visible text (default true). */
          includeText: z.boolean().optional(),
          /** Include links (default true), optionally only inside `linksSelector`. */
          links: z.boolean().optional(),
          linksSelector: z.string().min(1).max(2000).optional(),
          maxLinks: z.number().int().min(0).max(10_000).optional(),
          maxItems: z.number().int().min(1).max(10_000).optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
);

export type ScrapingPayload = z.output<typeof ScrapingPayloadSchema>;

export const ScrapingResultSchema = z.object({
  ...NavigationShape,
  redirects: z.array(z.string()),
  title: z.string(),
  metadata: z
    .record(z.string(), z.unknown())
    .describe('description, keywords, author, canonical, lang, charset, og and twitter tags'),
  elements: z
    .array(z.unknown())
    .optional()
    .describe('with selector: {text, attributes, html?} of each matching element'),
  data: z.unknown().optional().describe('with options.schema: the extracted data, shaped like the schema'),
  text: z.string().optional(),
  html: z.string().optional(),
  links: z.array(z.object({ href: z.string(), text: z.string() })).optional(),
  scriptResult,
  blocked,
});
export type ScrapingResult = z.infer<typeof ScrapingResultSchema>;

export function createScrapingHandler(deps: BrowserKindDeps): TaskHandler<ScrapingPayload, ScrapingResult> {
  return {
    capability: 'scraping',
    description:
      'Load a page and extract text, HTML, attributes and links by CSS selector or a declarative schema; returns JSON with title, metadata, final URL and HTTP status.',
    payloadSchema: ScrapingPayloadSchema,
    resultSchema: ScrapingResultSchema,
    readOnly: true,
    async run(payload, ctx) {
      const o = payload.options ?? {};
      if (o.schema && schemaDepth(o.schema) > 8)
        throw new FleetError('invalid_payload', 'options.schema: nested deeper than 8 levels');
      const maxChars = deps.limits.max_text_chars;
      const maxItems = o.maxItems ?? 1000;
      return withPage(deps, ctx, contextOptionsOf(o), async (session) => {
        ctx.progress({ percent: 10, message: 'loading page' });
        const nav = await session.open(payload, waitOptionsOf(o));
        ctx.progress({ percent: 60, message: 'extracting' });
        const page = session.page;
        const evaluate = async <A, R>(fn: (a: A) => R, arg: A): Promise<R> => {
          try {
            return (await page.evaluate(fn as (a: unknown) => unknown, arg)) as R;
          } catch (err) {
            throw session.classify(err, 'internal');
          }
        };
        const title = await page.title().catch(() => '');
        const metadata = await evaluate(metadataInPage, undefined);
        let elements: unknown[] | undefined;
        if (payload.selector) {
          elements = await evaluate(elementsInPage, {
            selector: payload.selector,
            html: o.includeHtml ?? false,
            maxChars,
            maxItems,
          });
          if (elements.length === 0) {
            throw new FleetError('selector_not_found', `no element matches ${payload.selector}`, {
              details: { selector: payload.selector },
            });
          }
        }
        let data: unknown;
        if (o.schema) {
          data = await evaluate(extractInPage, { schema: o.schema, maxChars, maxItems });
        }
        const text =
          (o.includeText ?? true)
            ? await evaluate((max: number) => (document.body?.innerText ?? '').slice(0, max), maxChars)
            : undefined;
        const html =
          o.includeHtml && !payload.selector
            ? await evaluate((max: number) => document.documentElement.outerHTML.slice(0, max), maxChars)
            : undefined;
        const links =
          (o.links ?? true)
            ? await evaluate(linksInPage, { scope: o.linksSelector ?? null, max: o.maxLinks ?? 500 })
            : undefined;
        const scriptResult = payload.script ? await runPageScript(session, payload.script) : undefined;
        session.throwIfViolated();
        const output = {
          url: payload.url ?? null,
          finalUrl: nav.finalUrl,
          status: nav.status ?? null,
          redirects: nav.redirects,
          title,
          metadata,
          ...(elements !== undefined ? { elements } : {}),
          ...(data !== undefined ? { data } : {}),
          ...(text !== undefined ? { text } : {}),
          ...(html !== undefined ? { html } : {}),
          ...(links !== undefined ? { links } : {}),
          ...(scriptResult !== undefined ? { scriptResult } : {}),
          blocked: session.blocked(),
        };
        return { output: capJson(output, deps.limits.max_output_bytes, 'the scraped output') };
      });
    },
  };
}
