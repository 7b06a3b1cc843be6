/**
 * Deterministic code from a simplified design: HTML + CSS, and a React (TSX) component with Tailwind
 * classes. No model is asked: every CSS declaration follows from the design (auto layout → flex, sizing
 * → flex/align-self/width, everything else absolutely placed from its box), so the rendered boxes match
 * Figma's. Shared styles become CSS custom properties (`--fill-brand-primary`) and image fills and vectors
 * become references to exported asset files the caller can fetch with the asset-export tools.
 *
 * Text keeps what a person sees: style runs become `<span>`s (or `<a>` for a hyperlink), list lines
 * become `<ul>`/`<ol>` items. A component set becomes one class per variant in HTML, and in React one
 * component whose props are the set's properties: variant axes pick the variant, booleans show the layers
 * they drive, texts replace the characters they drive.
 */
import {
  deref,
  slug,
  type SimpleLayout,
  type SimpleNode,
  type SimplePropertyDef,
  type SimpleStroke,
  type SimplifiedDesign,
} from './simplify.js';
import type { SimpleFill, SimpleTextStyle } from './css-values.js';
import type { SimpleLink } from './text-runs.js';

export interface AssetRef {
  file: string;
  kind: 'image-fill' | 'vector';
  /** The image fill's imageRef, or the node id to render. */
  ref: string;
  format: 'png' | 'svg';
}

export interface GeneratedCode {
  html?: string;
  css?: string;
  react?: string;
  /** The token custom properties, for a Tailwind or CSS setup to include once. */
  tokensCss: string;
  assets: AssetRef[];
  componentName: string;
}

type Decls = [string, string][];

interface Emitted {
  node: SimpleNode;
  className: string;
  decls: Decls;
  tag: 'div' | 'p' | 'img';
  children: Emitted[];
  src?: string;
  /** One rule per style run of the text, in `node.runs` order. */
  runs?: { className: string; decls: Decls }[];
  /** Extra rules scoped under this element (list markers and spacing). */
  nested?: [string, Decls][];
  /** `data-*` attributes (a variant's values). */
  data?: Record<string, string>;
}

function px(n: number): string {
  return `${Math.round(n * 100) / 100}px`;
}

class Builder {
  readonly assets = new Map<string, AssetRef>();
  readonly tokens = new Map<string, string>();
  private readonly classNames = new Set<string>();

  constructor(
    private readonly design: SimplifiedDesign,
    private readonly assetDir: string,
    /** React with component props: layers whose visibility a boolean property drives are kept. */
    private readonly withProps = false,
  ) {}

  private uniqueClass(base: string): string {
    let className = base;
    while (this.classNames.has(className)) className += '-x';
    this.classNames.add(className);
    return className;
  }

  /** A value from the styles table becomes a custom property; an inline one stays literal. */
  private token(ref: unknown, css: string): string {
    if (typeof ref === 'string' && ref.startsWith('$')) {
      const name = ref.slice(1);
      this.tokens.set(name, css);
      return `var(--${name})`;
    }
    return css;
  }

  private fillCss(ref: SimpleNode['fills']): { background?: string; color?: string } {
    const fills = deref<SimpleFill[]>(ref, this.design.styles);
    if (!fills?.length) return {};
    const layers = [...fills].reverse().map((f) => {
      if (typeof f === 'string') return f.includes('gradient') ? f : `linear-gradient(${f}, ${f})`;
      const file = `${this.assetDir}/${slug(f.image)}.png`;
      this.assets.set(file, { file, kind: 'image-fill', ref: f.image, format: 'png' });
      const size = f.scaleMode === 'FIT' ? 'contain' : f.scaleMode === 'TILE' ? 'auto' : 'cover';
      return `url(${file}) center / ${size} ${f.scaleMode === 'TILE' ? 'repeat' : 'no-repeat'}`;
    });
    const single = fills.length === 1 && typeof fills[0] === 'string' ? fills[0] : undefined;
    if (single && !single.includes('gradient'))
      return { background: this.token(ref, single), color: this.token(ref, single) };
    return { background: layers.join(', ') };
  }

  emit(node: SimpleNode, parent: SimpleNode | undefined, set?: SimpleNode): Emitted | undefined {
    if (node.visible === false && !(this.withProps && node.propertyRefs?.visible)) return undefined;
    const decls: Decls = [];
    const layout = deref<SimpleLayout>(node.layout, this.design.styles);
    const parentLayout = parent ? deref<SimpleLayout>(parent.layout, this.design.styles) : undefined;
    const isText = node.text !== undefined;
    const isVector = node.vector === true;

    // Place in the parent.
    if (!parent) {
      decls.push(['position', 'relative'], ['width', px(node.box.w)]);
      if (!layout || node.sizing?.h !== 'hug') decls.push(['height', px(node.box.h)]);
    } else if (node.absolute || !parentLayout) {
      decls.push(
        ['position', 'absolute'],
        ['left', px(node.box.x)],
        ['top', px(node.box.y)],
        ['width', px(node.box.w)],
        ['height', px(node.box.h)],
      );
    } else {
      const row = parentLayout.flexDirection === 'row';
      const main = row ? node.sizing?.w : node.sizing?.h;
      const cross = row ? node.sizing?.h : node.sizing?.w;
      const mainSize = row ? node.box.w : node.box.h;
      const crossSize = row ? node.box.h : node.box.w;
      const [mainProp, crossProp] = row ? ['width', 'height'] : ['height', 'width'];
      if (main === 'fill') decls.push(['flex', '1 1 0'], [row ? 'min-width' : 'min-height', '0']);
      else {
        decls.push(['flex-shrink', '0']);
        // Leaves get their Figma size even when they hug: fonts differ between machines, boxes must not.
        if (main !== 'hug' || isText || !layout) decls.push([mainProp, px(mainSize)]);
      }
      if (cross === 'fill') decls.push(['align-self', 'stretch']);
      else if (cross !== 'hug' || isText || !layout) decls.push([crossProp, px(crossSize)]);
    }
    if (layout) {
      decls.push(['display', 'flex'], ['flex-direction', layout.flexDirection]);
      if (layout.flexWrap) decls.push(['flex-wrap', 'wrap']);
      if (layout.gap !== undefined || layout.rowGap !== undefined) {
        decls.push([
          'gap',
          layout.flexWrap ? `${px(layout.rowGap ?? 0)} ${px(layout.gap ?? 0)}` : px(layout.gap ?? 0),
        ]);
      }
      if (layout.padding) decls.push(['padding', layout.padding]);
      if (layout.justifyContent) decls.push(['justify-content', layout.justifyContent]);
      // Figma's default is MIN, CSS's is stretch: say it, or children grow to the row's height.
      decls.push(['align-items', layout.alignItems ?? 'flex-start']);
      if (layout.flexWrap) decls.push(['align-content', 'flex-start']);
    }
    // Children placed absolutely need a containing block; flowed ones with a parent already are one via `relative`.
    if (parent && node.children?.length && !node.absolute && parentLayout)
      decls.push(['position', 'relative']);

    // Paint.
    if (!isVector) {
      const fill = this.fillCss(node.fills);
      if (isText) {
        if (fill.color) decls.push(['color', fill.color]);
      } else if (fill.background) decls.push(['background', fill.background]);
    }
    const stroke = deref<SimpleStroke>(node.strokes, this.design.styles);
    if (stroke && typeof stroke.color === 'string' && !isText && !isVector) {
      const offset =
        stroke.align === 'inside' ? -stroke.weight : stroke.align === 'center' ? -stroke.weight / 2 : 0;
      decls.push(
        ['outline', `${px(stroke.weight)} solid ${this.token(node.strokes, stroke.color)}`],
        ['outline-offset', px(offset)],
      );
    }
    const fx = deref<{ boxShadow?: string; filter?: string; backdropFilter?: string }>(
      node.effects,
      this.design.styles,
    );
    if (fx?.boxShadow) decls.push(['box-shadow', this.token(node.effects, fx.boxShadow)]);
    if (fx?.filter) decls.push(['filter', fx.filter]);
    if (fx?.backdropFilter) decls.push(['backdrop-filter', fx.backdropFilter]);
    if (node.type === 'ELLIPSE') decls.push(['border-radius', '50%']);
    else if (Array.isArray(node.radius)) decls.push(['border-radius', node.radius.map(px).join(' ')]);
    else if (node.radius) decls.push(['border-radius', px(node.radius)]);
    if (node.opacity !== undefined) decls.push(['opacity', String(node.opacity)]);
    if (node.clip) decls.push(['overflow', 'hidden']);

    const ts = isText ? (deref<SimpleTextStyle>(node.textStyle, this.design.styles) ?? {}) : {};
    if (isText) {
      decls.push(...textDecls(ts));
      if (ts.paragraphIndent) decls.push(['text-indent', px(ts.paragraphIndent)]);
      if (ts.maxLines === 1)
        decls.push(['overflow', 'hidden'], ['text-overflow', 'ellipsis'], ['white-space', 'nowrap']);
      else if (ts.maxLines)
        decls.push(
          ['overflow', 'hidden'],
          ['display', '-webkit-box'],
          ['-webkit-box-orient', 'vertical'],
          ['-webkit-line-clamp', String(ts.maxLines)],
        );
      if (ts.maxLines !== 1) decls.push(['white-space', 'pre-wrap']);
    }

    const variant = set && node.component?.variant;
    const className = this.uniqueClass(
      variant
        ? `${slug(set.name).slice(0, 24)}--${Object.entries(variant)
            .map(([k, v]) => `${slug(k)}-${slug(v)}`)
            .join('--')}`
        : `${slug(node.name).slice(0, 24)}-${slug(node.id)}`,
    );
    const blocks = isText && (node.lines !== undefined || (ts.paragraphSpacing ?? 0) > 0);
    const out: Emitted = {
      node,
      className,
      decls,
      tag: isText ? (blocks ? 'div' : 'p') : isVector ? 'img' : 'div',
      children: [],
      ...(variant
        ? { data: Object.fromEntries(Object.entries(variant).map(([k, v]) => [`data-${slug(k)}`, v])) }
        : {}),
    };
    if (isText && node.runs?.length) {
      out.runs = node.runs.map((r, i) => {
        const { color, link: _link, ...style } = r.style;
        const d = textDecls(style);
        if (color) d.unshift(['color', color]);
        return { className: this.uniqueClass(`${className}-r${i + 1}`), decls: d };
      });
    }
    if (blocks) {
      out.nested = [];
      if (node.lines?.some((l) => l.type !== 'none'))
        out.nested.push(['ul, ol', [['padding-left', '1.5em']]], ['li', [['display', 'list-item']]]);
      if (ts.listSpacing) out.nested.push(['li + li', [['margin-top', px(ts.listSpacing)]]]);
      if (ts.paragraphSpacing)
        out.nested.push([
          '.fp + .fp, ul + .fp, ol + .fp, .fp + ul, .fp + ol',
          [['margin-top', px(ts.paragraphSpacing)]],
        ]);
    }
    if (isVector) {
      const file = `${this.assetDir}/${slug(node.id)}.svg`;
      this.assets.set(file, { file, kind: 'vector', ref: node.id, format: 'svg' });
      out.src = file;
      decls.push(['display', 'block']);
      return out;
    }
    const isSet = node.type === 'COMPONENT_SET';
    for (const c of node.children ?? []) {
      const e = this.emit(c, node, isSet ? node : undefined);
      if (e) out.children.push(e);
    }
    return out;
  }

  tokensCss(): string {
    const lines = [...this.tokens].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `  --${k}: ${v};`);
    return lines.length ? `:root {\n${lines.join('\n')}\n}\n` : '';
  }
}

function textDecls(ts: SimpleTextStyle): Decls {
  const decls: Decls = [];
  // A family name from the design goes into CSS and a JSX class string: keep only what names fonts.
  if (ts.fontFamily)
    decls.push(['font-family', `'${ts.fontFamily.replace(/[^\p{L}\p{N} ._-]/gu, '')}', sans-serif`]);
  if (ts.fontSize) decls.push(['font-size', px(ts.fontSize)]);
  if (ts.fontWeight) decls.push(['font-weight', String(ts.fontWeight)]);
  if (ts.lineHeight) decls.push(['line-height', ts.lineHeight]);
  if (ts.letterSpacing) decls.push(['letter-spacing', ts.letterSpacing]);
  if (ts.textAlign) decls.push(['text-align', ts.textAlign]);
  if (ts.textTransform) decls.push(['text-transform', ts.textTransform]);
  if (ts.textDecoration) decls.push(['text-decoration', ts.textDecoration]);
  if (ts.fontStyle) decls.push(['font-style', ts.fontStyle]);
  if (ts.fontVariant) decls.push(['font-variant', ts.fontVariant]);
  return decls;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * An href only for schemes that navigate (a design is untrusted input: `javascript:` must not become
 * code); a link to a Figma node has no URL outside Figma and stays a data attribute.
 */
function hrefOf(link: SimpleLink | undefined): { href?: string; node?: string } {
  if (!link) return {};
  if ('nodeId' in link) return { node: link.nodeId };
  try {
    const u = new URL(link.url);
    if (u.protocol === 'https:' || u.protocol === 'http:' || u.protocol === 'mailto:')
      return { href: u.href };
  } catch {
    // not a URL: drop it
  }
  return {};
}

/** A piece of text to render: plain, or a run (its index) possibly linked. */
interface Segment {
  text: string;
  run?: number;
}

function segments(e: Emitted, from: number, to: number): Segment[] {
  const text = e.node.text ?? '';
  const out: Segment[] = [];
  let at = from;
  (e.node.runs ?? []).forEach((r, i) => {
    const a = Math.max(r.start, from);
    const b = Math.min(r.end, to);
    if (b <= a) return;
    if (a > at) out.push({ text: text.slice(at, a) });
    out.push({ text: text.slice(a, b), run: i });
    at = b;
  });
  if (at < to) out.push({ text: text.slice(at, to) });
  return out;
}

/** Lines of a text as [start, end) ranges without their separators (newline or paragraph separator). */
function lineRanges(text: string): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || text[i] === '\n' || text[i] === '\u2029') {
      out.push([start, i]);
      start = i + 1;
    }
  }
  return out;
}

/** Text content as blocks: list items grouped into lists, other lines as block paragraphs. */
type Block = { kind: 'p'; range: [number, number] } | { kind: 'ul' | 'ol'; items: [number, number][] };

function blocksOf(e: Emitted): Block[] {
  const ranges = lineRanges(e.node.text ?? '');
  const out: Block[] = [];
  ranges.forEach((range, i) => {
    const type = e.node.lines?.[i]?.type ?? 'none';
    const last = out[out.length - 1];
    if (type === 'none') out.push({ kind: 'p', range });
    else {
      const kind = type === 'ordered' ? 'ol' : 'ul';
      if (last && last.kind === kind) last.items.push(range);
      else out.push({ kind, items: [range] });
    }
  });
  return out;
}

function segmentHtml(e: Emitted, seg: Segment): string {
  const text = escapeHtml(seg.text);
  if (seg.run === undefined) return text;
  const cls = e.runs![seg.run]!.className;
  const { href, node } = hrefOf(e.node.runs![seg.run]!.style.link);
  if (href) return `<a class="${cls}" href="${escapeHtml(href)}">${text}</a>`;
  return `<span class="${cls}"${node ? ` data-figma-link="${escapeHtml(node)}"` : ''}>${text}</span>`;
}

function textHtml(e: Emitted): string {
  const text = e.node.text ?? '';
  const inline = (a: number, b: number) =>
    segments(e, a, b)
      .map((s) => segmentHtml(e, s))
      .join('');
  // No whitespace between block tags: the element is pre-wrap, so any would render.
  const body =
    e.tag === 'div'
      ? blocksOf(e)
          .map((b) =>
            b.kind === 'p'
              ? `<span class="fp" style="display: block">${inline(...b.range)}</span>`
              : `<${b.kind}>${b.items.map((r) => `<li>${inline(...r)}</li>`).join('')}</${b.kind}>`,
          )
          .join('')
      : inline(0, text.length);
  const { href } = hrefOf(e.node.link);
  return href ? `<a href="${escapeHtml(href)}" style="color: inherit">${body}</a>` : body;
}

function htmlOf(e: Emitted, indent: string): string {
  const data = Object.entries(e.data ?? {})
    .map(([k, v]) => ` ${k}="${escapeHtml(v)}"`)
    .join('');
  const attrs = `class="${e.className}" data-figma-id="${escapeHtml(e.node.id)}"${data}`;
  if (e.tag === 'img')
    return `${indent}<img ${attrs} src="${escapeHtml(e.src!)}" alt="${escapeHtml(e.node.name)}">`;
  if (e.node.text !== undefined) return `${indent}<${e.tag} ${attrs}>${textHtml(e)}</${e.tag}>`;
  if (!e.children.length) return `${indent}<div ${attrs}></div>`;
  return `${indent}<div ${attrs}>\n${e.children.map((c) => htmlOf(c, indent + '  ')).join('\n')}\n${indent}</div>`;
}

function rule(selector: string, decls: Decls): string {
  return `${selector} {\n${decls.map(([k, v]) => `  ${k}: ${v};`).join('\n')}\n}`;
}

function cssOf(e: Emitted, into: string[]): void {
  into.push(rule(`.${e.className}`, e.decls));
  for (const r of e.runs ?? []) into.push(rule(`.${r.className}`, r.decls));
  for (const [sel, decls] of e.nested ?? [])
    into.push(
      rule(
        sel
          .split(', ')
          .map((x) => `.${e.className} ${x}`)
          .join(', '),
        decls,
      ),
    );
  for (const c of e.children) cssOf(c, into);
}

const TW_EXACT: Record<string, string> = {
  'position:relative': 'relative',
  'position:absolute': 'absolute',
  'display:flex': 'flex',
  'display:block': 'block',
  'flex-direction:row': 'flex-row',
  'flex-direction:column': 'flex-col',
  'flex-wrap:wrap': 'flex-wrap',
  'flex-shrink:0': 'shrink-0',
  'flex:1 1 0': 'flex-1',
  'min-width:0': 'min-w-0',
  'min-height:0': 'min-h-0',
  'align-self:stretch': 'self-stretch',
  'justify-content:center': 'justify-center',
  'justify-content:flex-end': 'justify-end',
  'justify-content:space-between': 'justify-between',
  'align-items:center': 'items-center',
  'align-items:flex-end': 'items-end',
  'align-items:baseline': 'items-baseline',
  'align-items:flex-start': 'items-start',
  'align-content:flex-start': 'content-start',
  'overflow:hidden': 'overflow-hidden',
  'white-space:pre-wrap': 'whitespace-pre-wrap',
  'text-align:center': 'text-center',
  'text-align:right': 'text-right',
  'text-align:justify': 'text-justify',
  'border-radius:50%': 'rounded-full',
  'font-style:italic': 'italic',
  'text-transform:uppercase': 'uppercase',
  'text-transform:lowercase': 'lowercase',
  'text-transform:capitalize': 'capitalize',
  'text-decoration:underline': 'underline',
  'text-decoration:line-through': 'line-through',
  'text-decoration:none': 'no-underline',
  'font-style:normal': 'not-italic',
  'font-variant:small-caps': '[font-variant:small-caps]',
  'text-overflow:ellipsis': 'text-ellipsis',
  'white-space:nowrap': 'whitespace-nowrap',
  'display:list-item': 'list-item',
};

const TW_PREFIX: Record<string, string> = {
  width: 'w',
  height: 'h',
  left: 'left',
  top: 'top',
  gap: 'gap',
  padding: 'p',
  'border-radius': 'rounded',
  opacity: 'opacity',
  'font-size': 'text',
  'font-weight': 'font',
  'line-height': 'leading',
  'letter-spacing': 'tracking',
  'box-shadow': 'shadow',
};

/** Tailwind classes for declarations: named utilities where they exist, arbitrary values otherwise. */
export function tailwindClasses(decls: Decls): string[] {
  const out: string[] = [];
  for (const [k, v] of decls) {
    const exact = TW_EXACT[`${k}:${v}`];
    if (exact) {
      out.push(exact);
      continue;
    }
    const arb = v.replace(/_/g, '\\_').replace(/ /g, '_');
    if (k === 'color') out.push(`text-[color:${arb}]`);
    else if (k === 'background')
      out.push(v.startsWith('url(') || v.includes('gradient') ? `[background:${arb}]` : `bg-[${arb}]`);
    else if (k === 'font-family') out.push(`font-[${arb}]`);
    else if (k === 'gap' && v.includes(' ')) {
      const [row, col] = v.split(' ');
      out.push(`gap-y-[${row}]`, `gap-x-[${col}]`);
    } else if (TW_PREFIX[k]) out.push(`${TW_PREFIX[k]}-[${arb}]`);
    else out.push(`[${k}:${arb}]`);
  }
  return out;
}

function pascal(s: string): string {
  const p = s
    .replace(/[^A-Za-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');
  return /^[A-Z]/.test(p) ? p : `Figma${p}`;
}

/** Property names as JS identifiers: `Has icon` → `hasIcon`; anything unusable gets a `prop` prefix. */
function propIdent(name: string): string {
  const words = name
    .replace(/[^A-Za-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter(Boolean);
  const id = words
    .map((w, i) => (i === 0 ? w[0]!.toLowerCase() + w.slice(1) : w[0]!.toUpperCase() + w.slice(1)))
    .join('');
  return /^[a-z][A-Za-z0-9]*$/.test(id) && !RESERVED.has(id) ? id : `prop${pascal(name)}`;
}
const RESERVED = new Set(
  'break case catch class const continue debugger default delete do else enum export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with yield let static implements interface package private protected public await key ref children'.split(
    ' ',
  ),
);

interface JsxProps {
  /** Property name → identifier, for the properties the component exposes. */
  idents: Map<string, string>;
}

function jsxText(e: Emitted, props: JsxProps | undefined): string {
  const textProp = e.node.propertyRefs?.characters;
  if (props && textProp && props.idents.has(textProp)) return `{${props.idents.get(textProp)}}`;
  const text = e.node.text ?? '';
  const inline = (a: number, b: number) =>
    segments(e, a, b)
      .map((seg) => {
        const t = `{${JSON.stringify(seg.text)}}`;
        if (seg.run === undefined) return t;
        const cls = JSON.stringify(tailwindClasses(e.runs![seg.run]!.decls).join(' '));
        const { href, node } = hrefOf(e.node.runs![seg.run]!.style.link);
        if (href) return `<a className=${cls} href={${JSON.stringify(href)}}>${t}</a>`;
        return `<span className=${cls}${node ? ` data-figma-link={${JSON.stringify(node)}}` : ''}>${t}</span>`;
      })
      .join('');
  const body =
    e.tag === 'div'
      ? blocksOf(e)
          .map((b) =>
            b.kind === 'p'
              ? `<span className="block">${inline(...b.range)}</span>`
              : `<${b.kind} className="${b.kind === 'ul' ? 'list-disc' : 'list-decimal'} pl-[1.5em]">${b.items.map((r) => `<li>${inline(...r)}</li>`).join('')}</${b.kind}>`,
          )
          .join('')
      : inline(0, text.length);
  const { href } = hrefOf(e.node.link);
  return href ? `<a href={${JSON.stringify(href)}} className="text-inherit">${body}</a>` : body;
}

function jsxOf(e: Emitted, indent: string, props?: JsxProps): string {
  const cls = tailwindClasses(e.decls).join(' ');
  // Design-derived strings go in expression containers: a JSX "string" attribute knows no escapes, so a
  // quote in a layer name would end it and let the rest become attributes.
  const attrs = `className=${JSON.stringify(cls)} data-figma-id={${JSON.stringify(e.node.id)}}`;
  const shownBy = e.node.propertyRefs?.visible;
  const ident = props && shownBy ? props.idents.get(shownBy) : undefined;
  let own: string;
  if (e.tag === 'img')
    own = `<img ${attrs} src={${JSON.stringify(e.src)}} alt={${JSON.stringify(e.node.name)}} />`;
  else if (e.node.text !== undefined) own = `<${e.tag} ${attrs}>${jsxText(e, props)}</${e.tag}>`;
  else if (!e.children.length) own = `<div ${attrs} />`;
  else
    own = `<div ${attrs}>\n${e.children.map((c) => jsxOf(c, indent + '  ', props)).join('\n')}\n${indent}</div>`;
  return ident
    ? `${indent}{${ident} && (\n${indent}  ${own.replace(/\n/g, '\n  ')}\n${indent})}`
    : `${indent}${own}`;
}

function tsTypeOf(def: SimplePropertyDef): string | undefined {
  if (def.type === 'VARIANT')
    return (def.options ?? [String(def.default)]).map((o) => JSON.stringify(o)).join(' | ');
  if (def.type === 'BOOLEAN') return 'boolean';
  if (def.type === 'TEXT') return 'string';
  return undefined; // INSTANCE_SWAP: which component to nest is not expressible without that component's code
}

/** React for a component set (variant switch) or a component with properties. */
function reactComponent(
  b: Builder,
  root: SimpleNode,
  componentName: string,
  header: string,
): string | undefined {
  const defs = root.component?.definitions;
  if (!defs || !Object.keys(defs).length) return undefined;
  const exposed = Object.entries(defs).filter(([, d]) => tsTypeOf(d) !== undefined);
  const idents = new Map(exposed.map(([name]) => [name, propIdent(name)]));
  const props: JsxProps = { idents };
  const iface = `export interface ${componentName}Props {\n${exposed
    .map(([name, d]) => `  /** ${name.replace(/\*\//g, '')} */\n  ${idents.get(name)}?: ${tsTypeOf(d)};`)
    .join('\n')}\n}`;
  const params = exposed.map(([name, d]) => `${idents.get(name)} = ${JSON.stringify(d.default)}`).join(', ');
  let body: string;
  if (root.type === 'COMPONENT_SET') {
    const branches = (root.children ?? [])
      .filter((c) => c.component?.variant)
      .map((c) => {
        const cond = Object.entries(c.component!.variant!)
          .filter(([axis]) => idents.has(axis))
          .map(([axis, v]) => `${idents.get(axis)} === ${JSON.stringify(v)}`)
          .join(' && ');
        const tree = b.emit({ ...c, visible: undefined }, undefined)!;
        return `  if (${cond || 'true'}) {\n    return (\n${jsxOf(tree, '      ', props)}\n    );\n  }`;
      });
    body = `${branches.join('\n')}\n  return null;`;
  } else {
    const tree = b.emit({ ...root, visible: undefined }, undefined)!;
    body = `  return (\n${jsxOf(tree, '    ', props)}\n  );`;
  }
  return `${header}${iface}\n\nexport function ${componentName}({ ${params} }: ${componentName}Props) {\n${body}\n}\n`;
}

export function generateCode(
  design: SimplifiedDesign,
  opts: { framework: 'html' | 'react' | 'both'; assetDir?: string },
): GeneratedCode {
  const root = design.nodes[0];
  if (!root) throw new Error('generateCode: empty design');
  const b = new Builder(design, opts.assetDir ?? 'assets');
  const tree = b.emit({ ...root, visible: undefined }, undefined)!;
  const componentName = pascal(root.name);
  const header = `// Generated from Figma node ${root.id} ("${root.name.replace(/[\r\n\u2028\u2029]/g, ' ')}"). Tokens: include tokensCss once (for example in globals.css).\n`;
  // Props need their own builder: it keeps the layers a boolean property shows, which HTML leaves out.
  const pb = new Builder(design, opts.assetDir ?? 'assets', true);
  const withProps = opts.framework !== 'html' ? reactComponent(pb, root, componentName, header) : undefined;
  for (const [k, v] of pb.assets) b.assets.set(k, v);
  for (const [k, v] of pb.tokens) b.tokens.set(k, v);
  const tokensCss = b.tokensCss();
  const out: GeneratedCode = { tokensCss, assets: [...b.assets.values()], componentName };
  if (opts.framework !== 'react') {
    const rules: string[] = [];
    cssOf(tree, rules);
    const css = `${tokensCss}*, *::before, *::after { box-sizing: border-box; margin: 0; padding: 0; }\n${rules.join('\n')}\n`;
    out.css = css;
    out.html = `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>${escapeHtml(root.name)}</title>\n<style>\n${css}</style>\n</head>\n<body>\n${htmlOf(tree, '')}\n</body>\n</html>\n`;
  }
  if (opts.framework !== 'html') {
    out.react =
      withProps ??
      `${header}export function ${componentName}() {\n  return (\n${jsxOf(tree, '    ')}\n  );\n}\n`;
  }
  return out;
}
