/**
 * Every task type against the fixture pages, on real Chromium (headless-shell), through the handlers directly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure } from '../../../helpers/failure.js';
import type { BrowserKind } from '../../../../src/workers/browser/index.js';
import { runTask } from '../../../fixtures/browser/kind.js';
import { startTestServer, type TestServer } from '../../../fixtures/browser/test-server.js';

let server: TestServer;
let kind: BrowserKind;

beforeAll(async () => {
  server = await startTestServer();
  kind = await startKind();
});

async function startKind() {
  const { startKind: start } = await import('../../../fixtures/browser/kind.js');
  return start([server.port]);
}

afterAll(async () => {
  await kind?.stop?.();
  await server?.close();
});

describe('screenshot', () => {
  it('returns intact PNG bytes of a URL with the page facts', async () => {
    const r = await runTask(kind, 'screenshot', {
      url: `${server.origin}/table.html`,
      options: { viewport: { width: 800, height: 600 } },
    });
    const out = r.output as Record<string, unknown>;
    const png = r.artifacts![0]!;
    expect(png.contentType).toBe('image/png');
    expect(png.data.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(out).toMatchObject({
      status: 200,
      title: 'Fleet inventory',
      width: 800,
      height: 600,
      bytes: png.data.length,
    });
  });

  it('takes a full-page JPEG of a long page, with quality and hidden selectors', async () => {
    const r = await runTask(kind, 'screenshot', {
      url: `${server.origin}/long.html`,
      options: {
        fullPage: true,
        format: 'jpeg',
        quality: 60,
        hideSelectors: ['#banner'],
        viewport: { width: 600, height: 400 },
      },
    });
    const out = r.output as { width: number; height: number };
    expect(r.artifacts![0]!.contentType).toBe('image/jpeg');
    expect(r.artifacts![0]!.data[0]).toBe(0xff);
    expect(out.width).toBe(600);
    expect(out.height).toBe(5000);
  });

  it('captures one element, a clip, a device scale and raw HTML', async () => {
    const el = await runTask(kind, 'screenshot', {
      url: `${server.origin}/long.html`,
      selector: '#five',
      options: { viewport: { width: 500, height: 400 } },
    });
    expect(el.output).toMatchObject({ width: 500, height: 1000 });
    const clip = await runTask(kind, 'screenshot', {
      html: '<body style="margin:0;background:#0a0"><p>hi</p></body>',
      options: { clip: { x: 0, y: 0, width: 50, height: 30 }, deviceScaleFactor: 2 },
    });
    expect(clip.output).toMatchObject({ width: 100, height: 60 });
  });

  it('waits for a selector that appears late', async () => {
    const r = await runTask(kind, 'screenshot', {
      url: `${server.origin}/wait.html`,
      script: 'document.getElementById("status").textContent',
      options: { waitForSelector: '#late' },
    });
    expect((r.output as { scriptResult: string }).scriptResult).toBe('ready');
  });

  it('fails with selector_not_found when the element never appears', async () => {
    const err = await failure(
      runTask(kind, 'screenshot', {
        url: `${server.origin}/wait.html`,
        options: { waitForSelector: '#never', waitTimeoutMs: 500 },
      }),
    );
    expect(err.code).toBe('selector_not_found');
  });
});

describe('scraping', () => {
  it('extracts a table by schema, with text, links, metadata and status', async () => {
    const r = await runTask(kind, 'scraping', {
      url: `${server.origin}/table.html`,
      selector: 'tbody tr',
      options: {
        schema: {
          heading: 'h1',
          rows: {
            selector: 'tbody tr',
            all: true,
            fields: {
              sku: { attribute: 'data-sku' },
              name: '.name',
              link: { selector: 'a', attribute: 'href' },
              qty: { selector: '.qty', type: 'integer' },
              price: { selector: '.price', type: 'number' },
            },
          },
          missing: '.nope',
        },
      },
    });
    const out = r.output as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(out.status).toBe(200);
    expect(out.title).toBe('Fleet inventory');
    expect(out.metadata).toMatchObject({
      description: 'A table of parts to scrape',
      lang: 'en',
      og: { title: 'Inventory OG' },
    });
    expect(out.data.heading).toBe('Inventory');
    expect(out.data.missing).toBeNull();
    expect(out.data.rows).toEqual([
      { sku: 'A-1', name: 'Bolt', link: `${server.origin}/parts/bolt`, qty: 120, price: 0.25 },
      { sku: 'B-2', name: 'Nut', link: `${server.origin}/parts/nut`, qty: 1500, price: 0.1 },
      { sku: 'C-3', name: 'Gear', link: `${server.origin}/parts/gear`, qty: 7, price: 12.5 },
    ]);
    expect(out.elements).toHaveLength(3);
    expect(out.elements[0].attributes['data-sku']).toBe('A-1');
    expect(out.links.map((l: { href: string }) => l.href)).toContain(`${server.origin}/parts/nut`);
    expect(out.text).toContain('Prices include tax.');
  });

  it('reports the final URL after redirects', async () => {
    const r = await runTask(kind, 'scraping', {
      url: `${server.origin}/redirect?to=/table.html`,
      options: { links: false },
    });
    expect(r.output).toMatchObject({
      finalUrl: `${server.origin}/table.html`,
      status: 200,
      redirects: [`${server.origin}/redirect?to=/table.html`],
    });
  });

  it('reports a 404 target as navigation_failed, or as 404 when error statuses are accepted', async () => {
    const err = await failure(runTask(kind, 'scraping', { url: `${server.origin}/status/404` }));
    expect(err.code).toBe('navigation_failed');
    expect(err.details).toMatchObject({ status: 404 });
    expect(err.retryable).toBe(false);
    const r = await runTask(kind, 'scraping', {
      url: `${server.origin}/status/404`,
      options: { allowErrorStatus: true },
    });
    expect(r.output).toMatchObject({ status: 404, title: 'Status 404' });
  });

  it('answers a bad selector with invalid_payload and no match with selector_not_found', async () => {
    expect(
      (await failure(runTask(kind, 'scraping', { url: `${server.origin}/table.html`, selector: 'td[' })))
        .code,
    ).toBe('invalid_payload');
    expect(
      (await failure(runTask(kind, 'scraping', { url: `${server.origin}/table.html`, selector: '.nothing' })))
        .code,
    ).toBe('selector_not_found');
  });

  it('turns a script that throws into script_error', async () => {
    const err = await failure(
      runTask(kind, 'scraping', {
        url: `${server.origin}/table.html`,
        script: '() => { throw new Error("boom in page") }',
      }),
    );
    expect(err.code).toBe('script_error');
    expect(err.message).toContain('boom in page');
  });
});

describe('web-automation', () => {
  it('runs steps with per-step results and a screenshot step', async () => {
    const r = await runTask(kind, 'web-automation', {
      url: `${server.origin}/app.html`,
      steps: [
        { action: 'fill', selector: '#new', value: 'write tests' },
        { action: 'check', selector: '#urgent' },
        { action: 'select', selector: '#prio', value: 'high' },
        { action: 'click', selector: '#add' },
        { action: 'type', selector: '#new', text: 'second' },
        { action: 'press', selector: '#new', key: 'Enter' },
        { action: 'hover', selector: '#next' },
        { action: 'scroll', to: 'bottom' },
        {
          action: 'evaluate',
          script: '() => Array.from(document.querySelectorAll("#list li")).map(li => li.textContent)',
        },
        { action: 'screenshot', name: 'list' },
        { action: 'click', selector: '#next' },
        { action: 'waitForUrl', url: '**/app-done.html' },
        { action: 'waitForSelector', selector: '#done' },
        { action: 'evaluate', script: '(x) => x * 2', arg: 21 },
      ],
    });
    const out = r.output as {
      ok: boolean;
      steps: Array<{ ok: boolean; result?: unknown }>;
      finalUrl: string;
      title: string;
    };
    expect(out.ok).toBe(true);
    expect(out.steps.every((s) => s.ok)).toBe(true);
    expect(out.steps[8]!.result).toEqual(['write tests ! [high]', 'second ! [high]']);
    expect(out.steps[13]!.result).toBe(42);
    expect(out.finalUrl).toBe(`${server.origin}/app-done.html`);
    expect(r.artifacts!.map((a) => a.name)).toEqual(['step-9-list.png']);
  });

  it('fails on a missing element with the step report and a screenshot of the failing step', async () => {
    const err = await failure(
      runTask(kind, 'web-automation', {
        url: `${server.origin}/app.html`,
        steps: [
          { action: 'fill', selector: '#new', value: 'x' },
          { action: 'click', selector: '#does-not-exist', timeoutMs: 300 },
          { action: 'click', selector: '#add' },
        ],
      }),
    );
    expect(err.code).toBe('selector_not_found');
    const d = err.details as {
      failedStep: number;
      steps: unknown[];
      screenshot: { contentType: string; base64: string };
    };
    expect(d.failedStep).toBe(1);
    expect(d.steps).toHaveLength(2);
    expect(Buffer.from(d.screenshot.base64, 'base64').subarray(1, 4).toString()).toBe('PNG');
  });

  it('reports instead of failing when asked, with the failure screenshot as an artifact', async () => {
    const r = await runTask(kind, 'web-automation', {
      url: `${server.origin}/app.html`,
      steps: [{ action: 'evaluate', script: '() => { throw new Error("nope") }' }],
      options: { onStepError: 'report' },
    });
    expect(r.output).toMatchObject({ ok: false, failedStep: 0, error: { code: 'script_error' } });
    expect(r.artifacts!.map((a) => a.name)).toEqual(['failure-step-0.png']);
  });
});

describe('testing', () => {
  it('reports pass/fail per assertion with timings and a screenshot on failure', async () => {
    const r = await runTask(kind, 'testing', {
      url: `${server.origin}/console-error.html`,
      assertions: [
        { type: 'textVisible', text: 'Hello tests' },
        { type: 'elementCount', selector: 'li', equals: 3 },
        { type: 'url', contains: '/console-error.html' },
        { type: 'title', equals: 'Noisy page' },
        { type: 'attribute', selector: 'h1', attribute: 'data-state', equals: 'ready' },
        { type: 'title', matches: '^Noisy' },
        { type: 'noConsoleErrors' },
        { type: 'elementCount', selector: 'li', min: 5, timeoutMs: 200 },
      ],
    });
    const out = r.output as {
      passed: boolean;
      assertions: Array<{ passed: boolean; durationMs: number }>;
      failedCount: number;
    };
    expect(out.passed).toBe(false);
    expect(out.assertions.map((a) => a.passed)).toEqual([true, true, true, true, true, true, false, false]);
    expect(out.failedCount).toBe(2);
    expect(out.assertions.every((a) => typeof a.durationMs === 'number')).toBe(true);
    expect(r.artifacts!.map((a) => a.name)).toEqual(['failure.png']);
  });

  it('passes after steps, with no screenshot', async () => {
    const r = await runTask(kind, 'testing', {
      url: `${server.origin}/app.html`,
      steps: [
        { action: 'fill', selector: '#new', value: 'a' },
        { action: 'click', selector: '#add' },
      ],
      assertions: [{ type: 'elementCount', selector: '#list li', equals: 1 }, { type: 'noConsoleErrors' }],
    });
    expect(r.output).toMatchObject({ passed: true, passedCount: 2 });
    expect(r.artifacts).toEqual([]);
  });
});

describe('form-filling', () => {
  it('fills a two-page form by label, name and selector, uploads a file and reports the result page', async () => {
    const r = await runTask(kind, 'form-filling', {
      url: `${server.origin}/form-step1.html`,
      stages: [
        {
          fields: [
            { label: 'Full name', value: 'Ada Lovelace' },
            { name: 'email', value: 'ada@example.com' },
            { selector: '#country', value: 'jp' },
          ],
          submit: true,
          waitFor: 'text=Step 2',
        },
        {
          fields: [
            { name: 'plan', value: 'pro' },
            { label: 'Send me the newsletter', value: true },
            {
              label: 'CV',
              files: [
                {
                  name: 'cv.txt',
                  mimeType: 'text/plain',
                  content: Buffer.from('hello cv').toString('base64'),
                },
              ],
            },
            { label: 'Bio', value: 'Mathematician' },
          ],
          submit: 'input[type=submit]',
        },
      ],
    });
    const out = r.output as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(out.status).toBe(201);
    expect(out.finalUrl).toBe(`${server.origin}/form/done`);
    expect(out.title).toBe('Thanks');
    expect(out.summary.headings).toEqual(['Thanks, Ada Lovelace']);
    expect(out.summary.messages).toContain('Account created');
    const text = out.summary.text as string;
    expect(text).toContain('email: ada@example.com');
    expect(text).toContain('country: jp');
    expect(text).toContain('plan: pro');
    expect(text).toContain('newsletter: yes');
    expect(text).toContain('cv: cv.txt (8 bytes, text/plain) hello cv');
    expect(out.filled.map((f: { type: string }) => f.type)).toEqual([
      'text',
      'text',
      'select',
      'radio',
      'checkbox',
      'file',
      'text',
    ]);
  });

  it('fails with selector_not_found for a field that is not there', async () => {
    const err = await failure(
      runTask(
        kind,
        'form-filling',
        { url: `${server.origin}/form-step1.html`, fields: [{ label: 'Shoe size', value: '42' }] },
        3000,
      ),
    );
    expect(['selector_not_found', 'timeout']).toContain(err.code);
  });
});

describe('pdf-generation', () => {
  it('prints a PDF that opens, with the right page count, header/footer and landscape', async () => {
    const r = await runTask(kind, 'pdf-generation', {
      url: `${server.origin}/print.html`,
      options: {
        format: 'A4',
        printBackground: true,
        margin: { top: '20mm', bottom: '20mm', left: 10, right: 10 },
        displayHeaderFooter: true,
        headerTemplate: '<div style="font-size:8px">Fleet report</div>',
        footerTemplate:
          '<div style="font-size:8px"><span class="pageNumber"></span>/<span class="totalPages"></span></div>',
      },
    });
    const pdf = r.artifacts![0]!;
    expect(pdf.contentType).toBe('application/pdf');
    expect(pdf.data.subarray(0, 5).toString()).toBe('%PDF-');
    expect(pdf.data.subarray(-8).toString()).toContain('%%EOF');
    expect(r.output).toMatchObject({ pages: 3, title: 'Report', bytes: pdf.data.length });
    const landscape = await runTask(kind, 'pdf-generation', {
      html: '<h1>One page</h1>',
      options: { landscape: true, format: 'Letter' },
    });
    expect(landscape.output).toMatchObject({ pages: 1 });
    expect(landscape.artifacts![0]!.data.toString('latin1')).toMatch(/\/MediaBox\s*\[0 0 792 612\]/);
  });
});
