/**
 * The declarative extraction schema of `scraping`, and the in-page function that applies it. The function is
 * sent to the renderer as source and runs there (never in Node); it must not reference anything outside itself.
 *
 *   { "title": "h1",                                            // text of the first match
 *     "price": { "selector": ".price", "type": "number" },
 *     "image": { "selector": "img", "attribute": "src" },       // URLs in href/src come back absolute
 *     "rows":  { "selector": "tbody tr", "all": true,           // a list of items
 *                "fields": { "name": "td:nth-child(1)", "qty": { "selector": "td:nth-child(2)", "type": "integer" } } } }
 */
import { z } from 'zod';

export type FieldSpec =
  | string
  | {
      selector?: string | undefined;
      attribute?: string | undefined;
      property?: 'text' | 'innerText' | 'html' | 'outerHtml' | 'value' | undefined;
      type?: 'string' | 'number' | 'integer' | 'boolean' | undefined;
      all?: boolean | undefined;
      fields?: Record<string, FieldSpec> | undefined;
    };

export const FieldSpecSchema: z.ZodType<FieldSpec> = z.lazy(() =>
  z.union([
    z.string().min(1).max(2000),
    z
      .object({
        selector: z.string().min(1).max(2000).optional(),
        attribute: z.string().min(1).max(200).optional(),
        property: z.enum(['text', 'innerText', 'html', 'outerHtml', 'value']).optional(),
        type: z.enum(['string', 'number', 'integer', 'boolean']).optional(),
        all: z.boolean().optional(),
        fields: z.record(z.string().min(1).max(200), FieldSpecSchema).optional(),
      })
      .strict(),
  ]),
);

export const ExtractionSchema = z.record(z.string().min(1).max(200), FieldSpecSchema);
export type Extraction = Record<string, FieldSpec>;

export function schemaDepth(spec: Extraction, depth = 1): number {
  let max = depth;
  for (const f of Object.values(spec)) {
    if (typeof f === 'object' && f.fields) max = Math.max(max, schemaDepth(f.fields, depth + 1));
  }
  return max;
}

/** Runs in the page. `maxChars` caps every string; `maxItems` every list. */
export function extractInPage(arg: {
  schema: Record<string, unknown>;
  maxChars: number;
  maxItems: number;
}): unknown {
  const { maxChars, maxItems } = arg;
  const cut = (s: string) => (s.length > maxChars ? s.slice(0, maxChars) : s);
  const norm = (s: string | null | undefined) => cut((s ?? '').replace(/\s+/g, ' ').trim());
  type Spec = {
    selector?: string;
    attribute?: string;
    property?: string;
    type?: string;
    all?: boolean;
    fields?: Record<string, unknown>;
  };
  const read = (el: Element, spec: Spec): unknown => {
    let raw: string | null;
    if (spec.attribute) {
      const name = spec.attribute.toLowerCase();
      raw = el.getAttribute(spec.attribute);
      if (raw !== null && (name === 'href' || name === 'src' || name === 'action')) {
        try {
          raw = new URL(raw, document.baseURI).href;
        } catch {
          /* keep as written */
        }
      }
      raw = raw === null ? null : cut(raw);
    } else if (spec.property === 'html') raw = cut(el.innerHTML);
    else if (spec.property === 'outerHtml') raw = cut(el.outerHTML);
    else if (spec.property === 'value') raw = cut(String((el as HTMLInputElement).value ?? ''));
    else if (spec.property === 'innerText') raw = cut((el as HTMLElement).innerText ?? '');
    else raw = norm(el.textContent);
    if (raw === null) return null;
    if (spec.type === 'number' || spec.type === 'integer') {
      const m = /-?\d[\d,]*(?:\.\d+)?|-?\.\d+/.exec(raw.replace(/\s/g, ''));
      if (!m) return null;
      const n = Number(m[0].replace(/,/g, ''));
      return spec.type === 'integer' ? Math.trunc(n) : n;
    }
    if (spec.type === 'boolean') return !/^(|0|false|no|off)$/i.test(raw.trim());
    return raw;
  };
  const apply = (scope: ParentNode & Node, rawSpec: unknown): unknown => {
    const spec: Spec = typeof rawSpec === 'string' ? { selector: rawSpec } : (rawSpec as Spec);
    const fields = spec.fields;
    const one = (el: Element): unknown => {
      if (!fields) return read(el, spec);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(fields)) out[k] = apply(el, v);
      return out;
    };
    if (!spec.selector) return scope instanceof Element ? one(scope) : null;
    if (spec.all) return Array.from(scope.querySelectorAll(spec.selector)).slice(0, maxItems).map(one);
    const el = scope.querySelector(spec.selector);
    return el ? one(el) : null;
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(arg.schema)) out[k] = apply(document, v);
  return out;
}

/** Runs in the page: title, meta description/keywords, canonical, lang, Open Graph and Twitter tags. */
export function metadataInPage(): Record<string, unknown> {
  const meta = (sel: string) => document.querySelector(sel)?.getAttribute('content') ?? null;
  const og: Record<string, string> = {};
  const twitter: Record<string, string> = {};
  for (const m of Array.from(
    document.querySelectorAll('meta[property^="og:"], meta[name^="twitter:"]'),
  ).slice(0, 100)) {
    const key = m.getAttribute('property') ?? m.getAttribute('name') ?? '';
    const value = (m.getAttribute('content') ?? '').slice(0, 2000);
    if (key.startsWith('og:')) og[key.slice(3)] = value;
    else twitter[key.slice(8)] = value;
  }
  return {
    description: meta('meta[name="description"]'),
    keywords: meta('meta[name="keywords"]'),
    author: meta('meta[name="author"]'),
    canonical: document.querySelector('link[rel="canonical"]')?.getAttribute('href') ?? null,
    lang: document.documentElement.getAttribute('lang'),
    charset: document.characterSet,
    og,
    twitter,
  };
}

/** Runs in the page: links (absolute), deduplicated, capped. */
export function linksInPage(arg: {
  scope: string | null;
  max: number;
}): Array<{ href: string; text: string }> {
  const root: ParentNode = (arg.scope ? document.querySelector(arg.scope) : document) ?? document;
  const seen = new Set<string>();
  const out: Array<{ href: string; text: string }> = [];
  for (const a of Array.from(root.querySelectorAll('a[href]'))) {
    const href = (a as HTMLAnchorElement).href;
    if (!href || seen.has(href)) continue;
    seen.add(href);
    out.push({ href, text: (a.textContent ?? '').replace(/\s+/g, ' ').trim().slice(0, 500) });
    if (out.length >= arg.max) break;
  }
  return out;
}

/** Runs in the page: text, HTML and attributes of every element matching a selector. */
export function elementsInPage(arg: {
  selector: string;
  html: boolean;
  maxChars: number;
  maxItems: number;
}): Array<{ text: string; html?: string; attributes: Record<string, string> }> {
  return Array.from(document.querySelectorAll(arg.selector))
    .slice(0, arg.maxItems)
    .map((el) => {
      const attributes: Record<string, string> = {};
      for (const a of Array.from(el.attributes).slice(0, 50)) attributes[a.name] = a.value.slice(0, 2000);
      const text = ((el as HTMLElement).innerText ?? el.textContent ?? '').trim().slice(0, arg.maxChars);
      return arg.html
        ? { text, html: el.innerHTML.slice(0, arg.maxChars), attributes }
        : { text, attributes };
    });
}
