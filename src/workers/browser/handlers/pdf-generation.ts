/**
 * `pdf-generation`: a URL or raw HTML → a PDF artifact (format, landscape, margins, background, header and
 * footer templates, page ranges, scale), with its page count and sha256 in the output.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { NavigationShape, blocked } from '../results.js';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { pdfPageCount } from '../image-info.js';
import { runPageScript } from '../page-script.js';
import { withPage, type BrowserKindDeps } from '../page-session.js';
import {
  PageOptionsShape,
  TargetShape,
  contextOptionsOf,
  requireTarget,
  taskTypeField,
  waitOptionsOf,
} from '../payload.js';

const CssLength = z.union([z.number().min(0), z.string().regex(/^\d+(\.\d+)?(px|in|cm|mm)?$/)]);

export const PdfPayloadSchema = requireTarget(
  z
    .object({
      taskType: taskTypeField('pdf-generation'),
      ...TargetShape,
      script: z.string().min(1).max(1_000_000).optional(),
      options: z
        .object({
          ...PageOptionsShape,
          format: z
            .enum(['Letter', 'Legal', 'Tabloid', 'Ledger', 'A0', 'A1', 'A2', 'A3', 'A4', 'A5', 'A6'])
            .optional(),
          width: CssLength.optional(),
          height: CssLength.optional(),
          landscape: z.boolean().optional(),
          margin: z
            .object({
              top: CssLength.optional(),
              right: CssLength.optional(),
              bottom: CssLength.optional(),
              left: CssLength.optional(),
            })
            .strict()
            .optional(),
          printBackground: z.boolean().optional(),
          displayHeaderFooter: z.boolean().optional(),
          headerTemplate: z.string().max(100_000).optional(),
          footerTemplate: z.string().max(100_000).optional(),
          pageRanges: z.string().max(200).optional(),
          scale: z.number().min(0.1).max(2).optional(),
          preferCSSPageSize: z.boolean().optional(),
          outline: z.boolean().optional(),
          tagged: z.boolean().optional(),
          /** CSS media used while printing (default print). */
          media: z.enum(['print', 'screen']).optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
);

export type PdfPayload = z.output<typeof PdfPayloadSchema>;

const cssLength = (v: string | number | undefined) => (typeof v === 'number' ? `${v}px` : v);

export const PdfResultSchema = z.object({
  ...NavigationShape,
  title: z.string(),
  contentType: z.literal('application/pdf'),
  bytes: z.number(),
  pages: z.number().describe('page count of the PDF'),
  sha256: z.string(),
  blocked,
});
export type PdfResult = z.infer<typeof PdfResultSchema>;

export function createPdfHandler(deps: BrowserKindDeps): TaskHandler<PdfPayload, PdfResult> {
  return {
    capability: 'pdf-generation',
    description:
      'Print a URL or raw HTML to PDF in headless Chromium (format, orientation, margins, background, header/footer templates).',
    payloadSchema: PdfPayloadSchema,
    resultSchema: PdfResultSchema,
    idempotent: true,
    readOnly: true,
    artifactTypes: ['application/pdf'],
    async run(payload, ctx) {
      const o = payload.options ?? {};
      return withPage(deps, ctx, contextOptionsOf(o), async (session) => {
        ctx.progress({ percent: 10, message: 'loading page' });
        const nav = await session.open(payload, waitOptionsOf(o));
        if (payload.script) await runPageScript(session, payload.script);
        if (o.media) await session.page.emulateMedia({ media: o.media });
        ctx.progress({ percent: 60, message: 'printing' });
        const margin = o.margin
          ? Object.fromEntries(Object.entries(o.margin).map(([k, v]) => [k, cssLength(v)]))
          : undefined;
        let data: Buffer;
        try {
          data = await session.page.pdf({
            ...(o.format !== undefined ? { format: o.format } : {}),
            ...(o.width !== undefined ? { width: cssLength(o.width) } : {}),
            ...(o.height !== undefined ? { height: cssLength(o.height) } : {}),
            ...(o.landscape !== undefined ? { landscape: o.landscape } : {}),
            ...(margin ? { margin } : {}),
            ...(o.printBackground !== undefined ? { printBackground: o.printBackground } : {}),
            ...(o.displayHeaderFooter !== undefined ? { displayHeaderFooter: o.displayHeaderFooter } : {}),
            ...(o.headerTemplate !== undefined ? { headerTemplate: o.headerTemplate } : {}),
            ...(o.footerTemplate !== undefined ? { footerTemplate: o.footerTemplate } : {}),
            ...(o.pageRanges !== undefined ? { pageRanges: o.pageRanges } : {}),
            ...(o.scale !== undefined ? { scale: o.scale } : {}),
            ...(o.preferCSSPageSize !== undefined ? { preferCSSPageSize: o.preferCSSPageSize } : {}),
            ...(o.outline !== undefined ? { outline: o.outline } : {}),
            ...(o.tagged !== undefined ? { tagged: o.tagged } : {}),
          });
        } catch (err) {
          const msg = String((err as Error)?.message ?? err);
          if (/page range|pageRanges|Page range/i.test(msg))
            throw new FleetError('invalid_payload', `options.pageRanges: ${msg.split('\n')[0]}`);
          throw session.classify(err);
        }
        if (data.length > deps.limits.max_output_bytes) {
          throw new FleetError(
            'payload_too_large',
            `the PDF is ${data.length} bytes, over the ${deps.limits.max_output_bytes}-byte cap`,
          );
        }
        const title = await session.page.title().catch(() => '');
        return {
          output: {
            url: payload.url ?? null,
            finalUrl: nav.finalUrl,
            status: nav.status ?? null,
            title,
            contentType: 'application/pdf',
            bytes: data.length,
            pages: pdfPageCount(data),
            sha256: createHash('sha256').update(data).digest('hex'),
            blocked: session.blocked(),
          },
          artifacts: [{ name: 'document.pdf', contentType: 'application/pdf', data }],
        };
      });
    },
  };
}
