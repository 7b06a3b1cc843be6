/**
 * The pieces the browser handlers' result schemas share (issue 18: each handler advertises what its `output`
 * is, and its return type is inferred from that schema). What a page computed (metadata, extracted data, a
 * page script's value) is the page's word: typed only as loosely as the page can make it.
 */
import { z } from 'zod';

/** A request the URL policy refused while the page loaded. */
export const BlockedRequestSchema = z.object({ url: z.string(), reason: z.string(), message: z.string() });

/** Where the task's page went: `url` as asked (null for raw HTML), where it ended and its HTTP status. */
export const NavigationShape = {
  url: z.string().nullable().describe('the URL asked for; null when the page was raw HTML'),
  finalUrl: z.string(),
  status: z.number().nullable().describe('HTTP status of the main document; null for raw HTML'),
};

export const blocked = z.array(BlockedRequestSchema).describe('requests the URL policy refused');

export const DownloadReportSchema = z.object({
  url: z.string(),
  suggestedFilename: z.string(),
  artifact: z.string().optional().describe('the artifact carrying the file, when it was returned'),
  contentType: z.string().optional(),
  bytes: z.number().optional(),
  sha256: z.string().optional(),
  refused: z.string().optional(),
  failed: z.string().optional(),
});

export const StepResultSchema = z.object({
  index: z.number(),
  action: z.string(),
  name: z.string().optional(),
  ok: z.boolean(),
  durationMs: z.number(),
  result: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

/** What a page script (`script`) returned: any JSON value. */
export const scriptResult = z.unknown().optional().describe("the page script's return value");
