/**
 * `form-filling`: fields found by label, name or selector (text, select, checkbox, radio, file upload from
 * bytes), submitted, then the resulting URL, HTTP status and a summary of the page. Multi-page forms are
 * `stages`, each with its fields, its submit and what to wait for before the next.
 *
 * A submit that answers with a file is a download: with `options.downloads: { accept: true, maxBytes? }` the file
 * comes back as an artifact and a `downloads` entry (see `downloads.ts`), without it the download is refused.
 */
import { z } from 'zod';
import { DownloadReportSchema, NavigationShape, blocked } from '../results.js';
import type { Locator } from 'playwright-core';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { capJson } from '../page-script.js';
import { DownloadsOptionSchema } from '../downloads.js';
import { withPage, type BrowserKindDeps, type PageSession } from '../page-session.js';
import {
  PageOptionsShape,
  TargetShape,
  contextOptionsOf,
  requireTarget,
  taskTypeField,
  waitOptionsOf,
} from '../payload.js';

const FileSchema = z
  .object({
    name: z.string().min(1).max(255),
    mimeType: z.string().min(1).max(200).default('application/octet-stream'),
    /** The file's bytes, base64. */
    content: z.string().max(50_000_000),
  })
  .strict();

export const FieldSchema = z
  .object({
    label: z.string().min(1).max(1000).optional(),
    name: z.string().min(1).max(1000).optional(),
    selector: z.string().min(1).max(2000).optional(),
    /** auto (default) looks at the element: select, checkbox, radio, file, else text. */
    type: z.enum(['auto', 'text', 'select', 'checkbox', 'radio', 'file']).optional(),
    /** text: the string; select: option value(s) or label(s); checkbox: true/false; radio: the value to pick. */
    value: z
      .union([z.string().max(1_000_000), z.number(), z.boolean(), z.array(z.string().max(10_000)).max(1000)])
      .optional(),
    files: z.array(FileSchema).max(20).optional(),
    /** Exact label match (default false: substring, case-insensitive). */
    exact: z.boolean().optional(),
  })
  .strict()
  .superRefine((f, ctx) => {
    const ways = [f.label, f.name, f.selector].filter((x) => x !== undefined).length;
    if (ways !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of label, name or selector' });
    if (f.value === undefined && f.files === undefined)
      ctx.addIssue({ code: 'custom', message: 'give a value (or files for a file input)' });
  });

const SubmitSchema = z.union([z.boolean(), z.string().min(1).max(2000)]);

const StageSchema = z
  .object({
    fields: z.array(FieldSchema).max(500).default([]),
    /** true: the form's submit button (or requestSubmit); a string: click that selector; false/absent: no submit. */
    submit: SubmitSchema.optional(),
    /** After submitting, wait for this selector (for forms that do not navigate). */
    waitFor: z.string().min(1).max(2000).optional(),
  })
  .strict();

export const FormFillingPayloadSchema = requireTarget(
  z
    .object({
      taskType: taskTypeField('form-filling'),
      ...TargetShape,
      fields: z.array(FieldSchema).max(500).optional(),
      submit: SubmitSchema.optional(),
      waitFor: z.string().min(1).max(2000).optional(),
      /** Multi-page forms: one stage per page. Used instead of `fields`/`submit`. */
      stages: z.array(StageSchema).min(1).max(50).optional(),
      options: z
        .object({ ...PageOptionsShape, downloads: DownloadsOptionSchema.optional() })
        .strict()
        .optional(),
    })
    .strict()
    .superRefine((v, ctx) => {
      if (v.stages && (v.fields || v.submit !== undefined))
        ctx.addIssue({ code: 'custom', message: 'give stages or fields/submit, not both', path: ['stages'] });
      if (!v.stages && !v.fields)
        ctx.addIssue({ code: 'custom', message: 'give fields (or stages)', path: ['fields'] });
    }),
);

export type FormFillingPayload = z.output<typeof FormFillingPayloadSchema>;
type Field = z.output<typeof FieldSchema>;

function locate(session: PageSession, f: Field): { locator: Locator; describe: string } {
  const page = session.page;
  if (f.selector) return { locator: page.locator(f.selector), describe: f.selector };
  if (f.name)
    return {
      locator: page.locator(`[name="${f.name.replace(/["\\]/g, '\\$&')}"]`),
      describe: `name=${f.name}`,
    };
  return { locator: page.getByLabel(f.label!, { exact: f.exact ?? false }), describe: `label=${f.label}` };
}

async function fillField(
  session: PageSession,
  f: Field,
  maxUpload: number,
): Promise<{ field: string; type: string }> {
  const { locator, describe } = locate(session, f);
  const t = session.timeout(10_000);
  const first = locator.first();
  try {
    await first.waitFor({ state: 'attached', timeout: t });
  } catch (err) {
    throw session.selectorError(err, describe);
  }
  let type = f.type ?? 'auto';
  if (type === 'auto') {
    const info = await first.evaluate((el) => ({
      tag: el.tagName.toLowerCase(),
      type: ((el as HTMLInputElement).type ?? '').toLowerCase(),
    }));
    type =
      info.tag === 'select'
        ? 'select'
        : info.type === 'checkbox'
          ? 'checkbox'
          : info.type === 'radio'
            ? 'radio'
            : info.type === 'file'
              ? 'file'
              : 'text';
  }
  try {
    switch (type) {
      case 'select':
        await first.selectOption(Array.isArray(f.value) ? f.value : String(f.value), { timeout: t });
        break;
      case 'checkbox':
        await first.setChecked(f.value === true || f.value === 'true' || f.value === 'on' || f.value === 1, {
          timeout: t,
        });
        break;
      case 'radio': {
        // A radio group shares a name: pick the member whose value (or label) is the requested one.
        const value = String(f.value);
        const byValue = f.name
          ? session.page.locator(
              `input[type=radio][name="${f.name.replace(/["\\]/g, '\\$&')}"][value="${value.replace(/["\\]/g, '\\$&')}"]`,
            )
          : locator.and(session.page.locator(`[value="${value.replace(/["\\]/g, '\\$&')}"]`));
        if ((await byValue.count()) > 0) await byValue.first().check({ timeout: t });
        else if (f.value === true || (await locator.count()) === 1) await first.check({ timeout: t });
        else throw new FleetError('selector_not_found', `no radio button ${describe} with value ${value}`);
        break;
      }
      case 'file': {
        const files = (f.files ?? []).map((file) => {
          const buffer = Buffer.from(file.content, 'base64');
          if (buffer.length > maxUpload)
            throw new FleetError('payload_too_large', `file ${file.name} is over ${maxUpload} bytes`);
          return { name: file.name, mimeType: file.mimeType, buffer };
        });
        await first.setInputFiles(files, { timeout: t });
        break;
      }
      default:
        await first.fill(String(f.value), { timeout: t });
    }
  } catch (err) {
    throw err instanceof FleetError ? err : session.classify(err, 'step_failed');
  }
  return { field: describe, type };
}

async function submit(
  session: PageSession,
  how: boolean | string,
  lastField: Locator | undefined,
): Promise<void> {
  const page = session.page;
  const t = session.timeout(10_000);
  try {
    if (typeof how === 'string') {
      await page.locator(how).first().click({ timeout: t });
    } else if (lastField) {
      const button = page
        .locator('form')
        .filter({ has: lastField })
        .locator('button:not([type=button]):not([type=reset]), input[type=submit], input[type=image]');
      if ((await button.count()) > 0) await button.first().click({ timeout: t });
      else await lastField.evaluate((el) => (el as HTMLInputElement).form?.requestSubmit());
    } else {
      const button = page.locator(
        'form button:not([type=button]):not([type=reset]), form input[type=submit]',
      );
      await button.first().click({ timeout: t });
    }
  } catch (err) {
    throw typeof how === 'string' ? session.selectorError(err, how) : session.classify(err, 'step_failed');
  }
  // A submit that navigates: let the new document load (a submit that does not is fine too).
  await page.waitForLoadState('load', { timeout: session.timeout(30_000) }).catch(() => undefined);
}

/** Runs in the page: what a person would look at after submitting. */
function summaryInPage(): Record<string, unknown> {
  const texts = (sel: string, n: number) =>
    Array.from(document.querySelectorAll(sel))
      .map((e) => (e.textContent ?? '').replace(/\s+/g, ' ').trim())
      .filter(Boolean)
      .slice(0, n);
  return {
    headings: texts('h1, h2, h3', 10),
    messages: texts('[role=alert], [role=status], .error, .errors, .success, .message, .alert', 10),
    invalidFields: Array.from(document.querySelectorAll(':invalid'))
      .map((e) => e.getAttribute('name') ?? e.id)
      .filter((n) => n && !/^(form)$/i.test(n))
      .slice(0, 50),
    forms: document.forms.length,
    text: (document.body?.innerText ?? '').slice(0, 2000),
  };
}

export const FormFillingResultSchema = z.object({
  url: NavigationShape.url,
  initialStatus: z.number().nullable(),
  finalUrl: z.string(),
  status: z.number().nullable().describe('HTTP status of the last document (after the submits)'),
  title: z.string(),
  filled: z.array(z.object({ stage: z.number(), field: z.string(), type: z.string() })),
  summary: z
    .record(z.string(), z.unknown())
    .describe('headings, messages, invalidFields, forms and text of the resulting page'),
  downloads: z.array(DownloadReportSchema),
  blocked,
});
export type FormFillingResult = z.infer<typeof FormFillingResultSchema>;

export function createFormFillingHandler(
  deps: BrowserKindDeps,
): TaskHandler<FormFillingPayload, FormFillingResult> {
  return {
    capability: 'form-filling',
    description:
      'Fill a web form (fields by label, name or selector: text, select, checkbox, radio, file upload), submit it (several pages if needed) and report the resulting URL, HTTP status and page summary.',
    payloadSchema: FormFillingPayloadSchema,
    resultSchema: FormFillingResultSchema,
    async run(payload, ctx) {
      const o = payload.options ?? {};
      const stages = payload.stages ?? [
        { fields: payload.fields ?? [], submit: payload.submit ?? true, waitFor: payload.waitFor },
      ];
      const contextOptions = { ...contextOptionsOf(o), downloads: o.downloads };
      return withPage(deps, ctx, contextOptions, async (session) => {
        const nav = await session.open(payload, waitOptionsOf(o));
        const filled: Array<{ stage: number; field: string; type: string }> = [];
        for (const [i, stage] of stages.entries()) {
          let last: Locator | undefined;
          for (const f of stage.fields) {
            const r = await fillField(session, f, deps.limits.max_upload_bytes);
            filled.push({ stage: i, ...r });
            last = locate(session, f).locator.first();
          }
          if (stage.submit !== undefined && stage.submit !== false) await submit(session, stage.submit, last);
          if (stage.waitFor) {
            try {
              await session.page
                .locator(stage.waitFor)
                .first()
                .waitFor({ state: 'visible', timeout: session.timeout(30_000) });
            } catch (err) {
              throw session.selectorError(err, stage.waitFor);
            }
          }
          session.throwIfViolated();
          ctx.progress({
            percent: Math.round(((i + 1) / stages.length) * 90),
            message: `stage ${i + 1}/${stages.length}`,
          });
        }
        const last = session.lastNavigation;
        const summary = await session.page.evaluate(summaryInPage).catch((err: unknown) => {
          throw session.classify(err);
        });
        const dl = await session.downloads.finish();
        return {
          output: capJson(
            {
              url: payload.url ?? null,
              initialStatus: nav.status ?? null,
              finalUrl: session.page.url(),
              status: last?.status ?? nav.status ?? null,
              title: await session.page.title().catch(() => ''),
              filled,
              summary,
              downloads: dl.downloads,
              blocked: session.blocked(),
            },
            deps.limits.max_output_bytes,
            'the form report',
          ),
          artifacts: dl.artifacts,
        };
      });
    },
  };
}
