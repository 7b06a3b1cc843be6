/**
 * Design fidelity an agent can trust, through the real MCP client (Streamable HTTP against a real worker):
 * text with several style runs, lists, links and small caps; hidden layers left out everywhere; style
 * names only where a node references the style; component sets with their properties (and React props
 * that pick the variant); gradient colours as tokens. The generated HTML is rendered in Chromium: boxes
 * within 2 px of Figma's, and the styled runs computed as designed. Fixtures: "Specimens" (5:1) and the
 * Button set (20:0) of the fake's design-system file.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Browser, Page } from 'playwright-core';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type StartedWorker } from '../../../helpers/fake-manager.js';
import { launchChromium } from '../../../helpers/chromium.js';
import {
  DESIGN_SYSTEM_KEY,
  PRICING_URL,
  PROMO_TEXT,
  SPECIMENS_ID,
} from '../../../../src/workers/figma-mcp/fake/fixtures/design-system.js';
import { createFigmaKind } from '../../../../src/workers/figma-mcp/index.js';
import { boxesOff, figmaBoxes, loadHtml } from './boxes.js';
import { rig, type Rig } from './setup.js';

let r: Rig;
let worker: StartedWorker;
let mcp: Client;
let browser: Browser;

beforeAll(async () => {
  r = await rig();
  worker = await startWorker(createFigmaKind(r.config), {
    workspace: r.workspace,
    figma_config: r.config.figma_config,
  });
  mcp = new Client({ name: 'fidelity-test', version: '1.0.0' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(`${worker.baseUrl}/mcp`)));
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await mcp?.close();
  await worker?.stop();
  await r?.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- deep JSON answers read by path
type Json = any;

async function tool(name: string, args: Record<string, unknown>): Promise<Json> {
  const res = (await mcp.callTool({ name, arguments: args })) as CallToolResult;
  if (res.isError) throw new Error(`${name}: ${(res.content[0] as { text: string }).text}`);
  return res.structuredContent;
}

function find(nodes: Json[], pred: (n: Json) => boolean): Json {
  for (const n of nodes) {
    if (pred(n)) return n;
    const hit = find(n.children ?? [], pred);
    if (hit) return hit;
  }
  return undefined;
}
const byName = (nodes: Json[], name: string) => find(nodes, (n) => n.name === name);

async function withPage<T>(html: string, fn: (page: Page) => Promise<T>): Promise<T> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  try {
    await loadHtml(page, html);
    return await fn(page);
  } finally {
    await page.close();
  }
}

/** TSX that does not parse is no code at all: the generated React must transpile without diagnostics. */
function transpile(tsx: string): string {
  const out = ts.transpileModule(tsx, {
    reportDiagnostics: true,
    compilerOptions: {
      jsx: ts.JsxEmit.React,
      jsxFactory: 'h',
      target: ts.ScriptTarget.ES2020,
      module: ts.ModuleKind.ESNext,
    },
  });
  expect(out.diagnostics?.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')) ?? []).toEqual([]);
  return out.outputText;
}

describe('text with several styles', () => {
  it('get_design emits style runs, list lines, links and small caps', async () => {
    const d = await tool('figma_get_design', { file: DESIGN_SYSTEM_KEY, node_ids: [SPECIMENS_ID] });
    const promo = byName(d.nodes, 'Promo');
    expect(promo.text).toBe(PROMO_TEXT);
    const at = (s: string) => PROMO_TEXT.indexOf(s);
    expect(promo.runs).toEqual([
      { start: at('20%'), end: at('20%') + 3, style: { fontWeight: 700, color: '#dc2626' } },
      {
        start: at('Pro plans'),
        end: at('Pro plans') + 9,
        style: { textDecoration: 'underline', color: '#4f46e5', link: { url: PRICING_URL } },
      },
      { start: at('today'), end: at('today') + 5, style: { fontStyle: 'italic' } },
    ]);
    const perks = byName(d.nodes, 'Perks');
    expect(perks.lines).toEqual([
      { type: 'unordered', indent: 1 },
      { type: 'unordered', indent: 1 },
      { type: 'unordered', indent: 1 },
    ]);
    const eyebrow = byName(d.nodes, 'Eyebrow');
    const style =
      typeof eyebrow.textStyle === 'string' ? d.styles[eyebrow.textStyle.slice(1)] : eyebrow.textStyle;
    expect(style).toMatchObject({ fontVariant: 'small-caps', letterSpacing: '1px' });
  });

  it('generated HTML renders each run with its colour, weight, link and the list as items (Chromium)', async () => {
    const gen = await tool('figma_generate_code', { file: DESIGN_SYSTEM_KEY, node_id: SPECIMENS_ID });
    const nodes = await r.core.client.getFileNodes(
      DESIGN_SYSTEM_KEY,
      [SPECIMENS_ID],
      {},
      { signal: new AbortController().signal, deadline: Date.now() + 10_000 },
    );
    const expected = figmaBoxes(nodes.nodes[SPECIMENS_ID]!.document);
    const seen = await withPage(gen.html, async (page) => {
      const boxes = await boxesOff(page, expected);
      const styled = await page.evaluate(() => {
        const promo = document.querySelector('[data-figma-id="5:2"]')!;
        const el = (text: string) =>
          Array.from(promo.querySelectorAll('*')).find((e) => e.textContent === text)!;
        const cs = (e: Element) => getComputedStyle(e);
        const bold = el('20%');
        const link = el('Pro plans') as HTMLAnchorElement;
        const today = el('today');
        const base = cs(promo);
        return {
          promoText: promo.textContent,
          bold: { color: cs(bold).color, weight: cs(bold).fontWeight },
          base: { color: base.color, weight: base.fontWeight },
          link: {
            tag: link.tagName,
            href: link.getAttribute('href'),
            color: cs(link).color,
            decoration: cs(link).textDecorationLine,
          },
          today: cs(today).fontStyle,
          items: Array.from(document.querySelectorAll('[data-figma-id="5:3"] ul > li')).map(
            (li) => li.textContent,
          ),
          caps: cs(document.querySelector('[data-figma-id="5:4"]')!).fontVariantCaps,
        };
      });
      return { boxes, styled };
    });
    expect(seen.boxes.off).toEqual([]);
    expect(seen.boxes.count).toBe(expected.size);
    expect(seen.styled).toEqual({
      promoText: PROMO_TEXT,
      bold: { color: 'rgb(220, 38, 38)', weight: '700' },
      base: { color: 'rgb(17, 24, 39)', weight: '400' },
      link: { tag: 'A', href: PRICING_URL, color: 'rgb(79, 70, 229)', decoration: 'underline' },
      today: 'italic',
      items: ['Fast pages', 'Safe defaults', 'No lock-in'],
      caps: 'small-caps',
    });
    expect(gen.react).toContain('<span className="text-[color:#dc2626] font-[700]">{"20%"}</span>');
    expect(gen.react).toContain(`href={${JSON.stringify(PRICING_URL)}}`);
    transpile(gen.react);
  });

  it('the analysis counts the run styles and their colours', async () => {
    const a = await tool('figma_analyze_design', { file: DESIGN_SYSTEM_KEY, node_ids: [SPECIMENS_ID] });
    const values = (list: { value: string }[]) => list.map((t) => t.value);
    expect(values(a.tokens.typography)).toEqual(
      expect.arrayContaining(['Inter 400 16/24', 'Inter 700 16/24']),
    );
    expect(values(a.tokens.colors)).toEqual(expect.arrayContaining(['#dc2626', '#4f46e5', '#111827']));
  });
});

describe('hidden layers', () => {
  it('are left out of get_design, the outline, the code and the analysis, and come back marked on request', async () => {
    const d = await tool('figma_get_design', { file: DESIGN_SYSTEM_KEY, node_ids: [SPECIMENS_ID] });
    const text = JSON.stringify(d);
    expect(text).not.toContain('INTERNAL draft');
    expect(text).not.toContain('Hidden Button');
    expect(d.hiddenOmitted).toBe(2);

    const all = await tool('figma_get_design', {
      file: DESIGN_SYSTEM_KEY,
      node_ids: [SPECIMENS_ID],
      include_hidden: true,
    });
    expect(byName(all.nodes, 'Draft Notes')).toMatchObject({ visible: false });
    expect(byName(all.nodes, 'Draft Text').text).toContain('INTERNAL draft');
    expect(all.hiddenOmitted).toBeUndefined();

    const outline = await tool('figma_get_outline', {
      file: DESIGN_SYSTEM_KEY,
      node_id: SPECIMENS_ID,
      depth: 3,
    });
    expect(outline.nodes.map((n: Json) => n.name)).not.toContain('Draft Notes');
    expect(outline.hiddenOmitted).toBe(2);

    const gen = await tool('figma_generate_code', { file: DESIGN_SYSTEM_KEY, node_id: SPECIMENS_ID });
    expect(gen.html + gen.react).not.toContain('INTERNAL');

    const a = await tool('figma_analyze_design', { file: DESIGN_SYSTEM_KEY, node_ids: [SPECIMENS_ID] });
    expect(a.components.usage).toEqual([]);
    expect(a.tokens.colors.map((c: Json) => c.value)).not.toContain('#ef4444');
    const withHidden = await tool('figma_analyze_design', {
      file: DESIGN_SYSTEM_KEY,
      node_ids: [SPECIMENS_ID],
      include_hidden: true,
    });
    expect(withHidden.components.usage).toEqual([
      expect.objectContaining({ componentId: '20:1', instances: 1 }),
    ]);
  });
});

describe('named styles', () => {
  it('are attached only where the node references the style', async () => {
    const d = await tool('figma_get_design', { file: DESIGN_SYSTEM_KEY, node_ids: [SPECIMENS_ID] });
    expect(byName(d.nodes, 'Brand Swatch').fills).toBe('$fill-brand-primary');
    expect(byName(d.nodes, 'Look-alike Swatch').fills).toEqual(['#4f46e5']);
    const gen = await tool('figma_generate_code', { file: DESIGN_SYSTEM_KEY, node_id: SPECIMENS_ID });
    expect(gen.html).toMatch(/\.look-alike-swatch-5-11 \{[^}]*background: #4f46e5;/);
    const a = await tool('figma_analyze_design', { file: DESIGN_SYSTEM_KEY, node_ids: [SPECIMENS_ID] });
    expect(a.detachedStyles).toEqual([
      expect.objectContaining({ nodeId: '5:11', kind: 'fill', matchesStyle: 'Brand/Primary' }),
    ]);
  });
});

describe('component sets', () => {
  it('get_design carries the property definitions, each variant its values, each instance its values', async () => {
    const d = await tool('figma_get_design', { file: DESIGN_SYSTEM_KEY, node_ids: ['20:0', '3:1'] });
    const set = d.nodes.find((n: Json) => n.id === '20:0');
    expect(set.component.definitions).toEqual({
      Type: { type: 'VARIANT', default: 'Primary', options: ['Primary', 'Secondary'] },
      State: { type: 'VARIANT', default: 'Default', options: ['Default', 'Hover'] },
      'Has icon': { type: 'BOOLEAN', default: false },
      Label: { type: 'TEXT', default: 'Button' },
    });
    expect(find(d.nodes, (n) => n.id === '20:2').component).toMatchObject({
      set: 'Button',
      variant: { Type: 'Primary', State: 'Hover' },
    });
    expect(find(d.nodes, (n) => n.id === '3:10').component.properties).toEqual({
      Type: 'Primary',
      State: 'Default',
      'Has icon': false,
      Label: 'Save',
    });
    expect(find(d.nodes, (n) => n.id === '20:1').children[0].propertyRefs).toEqual({ characters: 'Label' });
  });

  it('generates one class per variant in HTML and a React component whose props pick the variant', async () => {
    const gen = await tool('figma_generate_code', { file: DESIGN_SYSTEM_KEY, node_id: '20:0' });
    for (const cls of [
      'button--type-primary--state-default',
      'button--type-primary--state-hover',
      'button--type-secondary--state-default',
      'button--type-secondary--state-hover',
    ])
      expect(gen.html).toContain(`class="${cls}"`);
    expect(gen.html).toContain('data-type="Secondary" data-state="Hover"');
    expect(gen.react).toContain('type?: "Primary" | "Secondary";');
    expect(gen.react).toContain('hasIcon?: boolean;');
    expect(gen.react).toContain('label?: string;');
    // Render the component in Chromium with a minimal JSX factory: the props must select and fill the variant.
    const js = transpile(gen.react).replace(/export /g, '');
    // A classic script: the JSX factory first, then the component, exposed for the evaluation below.
    const factory = `function h(tag, attrs, ...kids) {
      const el = document.createElement(tag);
      for (const [k, v] of Object.entries(attrs ?? {})) el.setAttribute(k === 'className' ? 'class' : k, v);
      for (const k of kids.flat()) if (k !== false && k != null) el.append(k);
      return el;
    }`;
    const rendered = await withPage('<!doctype html><body></body>', async (page) => {
      await page.addScriptTag({ content: `${factory}\n${js}\nwindow.Button = Button;` });
      return page.evaluate(() => {
        const Button = (window as unknown as { Button: (p: object) => HTMLElement | null }).Button;
        const look = (el: HTMLElement | null) =>
          el && { id: el.dataset.figmaId, text: el.textContent, icon: el.querySelector('img') !== null };
        return {
          defaults: look(Button({})),
          secondaryHover: look(Button({ type: 'Secondary', state: 'Hover', hasIcon: true, label: 'Go' })),
        };
      });
    });
    expect(rendered).toEqual({
      defaults: { id: '20:1', text: 'Button', icon: false },
      secondaryHover: { id: '20:4', text: 'Go', icon: true },
    });
  });
});

describe('gradients', () => {
  it('become colour tokens (every stop) and gradient tokens in the analysis', async () => {
    const a = await tool('figma_analyze_design', { file: DESIGN_SYSTEM_KEY, node_ids: [SPECIMENS_ID] });
    expect(a.tokens.colors.map((c: Json) => c.value)).toContain('#ec4899');
    expect(a.tokens.gradients).toEqual([
      expect.objectContaining({ value: 'linear-gradient(90deg, #4f46e5 0%, #ec4899 100%)', count: 1 }),
    ]);
  });
});
