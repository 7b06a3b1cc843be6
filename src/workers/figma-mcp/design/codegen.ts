/**
 * Deterministic code from a simplified design: HTML + CSS, and a React (TSX) component with Tailwind
 * classes. No model is asked: every CSS declaration follows from the design (auto layout → flex, sizing
 * → flex/align-self/width, everything else absolutely placed from its box), so the rendered boxes match
 * Figma's. Shared styles become CSS custom properties (`--fill-brand-primary`) and image fills and vectors
 * become references to exported asset files the caller can fetch with the asset-export tools.
 */
import {
  deref,
  slug,
  type SimpleLayout,
  type SimpleNode,
  type SimpleStroke,
  type SimplifiedDesign,
} from './simplify.js';
import type { SimpleFill, SimpleTextStyle } from './css-values.js';

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
  ) {}

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

  emit(node: SimpleNode, parent: SimpleNode | undefined): Emitted | undefined {
    if (node.visible === false) return undefined;
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

    if (isText) {
      const ts = deref<SimpleTextStyle>(node.textStyle, this.design.styles) ?? {};
      if (ts.fontFamily) decls.push(['font-family', `'${ts.fontFamily.replace(/'/g, '')}', sans-serif`]);
      if (ts.fontSize) decls.push(['font-size', px(ts.fontSize)]);
      if (ts.fontWeight) decls.push(['font-weight', String(ts.fontWeight)]);
      if (ts.lineHeight) decls.push(['line-height', ts.lineHeight]);
      if (ts.letterSpacing) decls.push(['letter-spacing', ts.letterSpacing]);
      if (ts.textAlign) decls.push(['text-align', ts.textAlign]);
      if (ts.textTransform) decls.push(['text-transform', ts.textTransform]);
      if (ts.textDecoration) decls.push(['text-decoration', ts.textDecoration]);
      if (ts.fontStyle) decls.push(['font-style', ts.fontStyle]);
      decls.push(['white-space', 'pre-wrap']);
    }

    let className = `${slug(node.name).slice(0, 24)}-${slug(node.id)}`;
    while (this.classNames.has(className)) className += '-x';
    this.classNames.add(className);
    const out: Emitted = {
      node,
      className,
      decls,
      tag: isText ? 'p' : isVector ? 'img' : 'div',
      children: [],
    };
    if (isVector) {
      const file = `${this.assetDir}/${slug(node.id)}.svg`;
      this.assets.set(file, { file, kind: 'vector', ref: node.id, format: 'svg' });
      out.src = file;
      decls.push(['display', 'block']);
      return out;
    }
    for (const c of node.children ?? []) {
      const e = this.emit(c, node);
      if (e) out.children.push(e);
    }
    return out;
  }

  tokensCss(): string {
    const lines = [...this.tokens].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `  --${k}: ${v};`);
    return lines.length ? `:root {\n${lines.join('\n')}\n}\n` : '';
  }
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function htmlOf(e: Emitted, indent: string): string {
  const attrs = `class="${e.className}" data-figma-id="${escapeHtml(e.node.id)}"`;
  if (e.tag === 'img')
    return `${indent}<img ${attrs} src="${escapeHtml(e.src!)}" alt="${escapeHtml(e.node.name)}">`;
  if (e.tag === 'p') return `${indent}<p ${attrs}>${escapeHtml(e.node.text ?? '')}</p>`;
  if (!e.children.length) return `${indent}<div ${attrs}></div>`;
  return `${indent}<div ${attrs}>\n${e.children.map((c) => htmlOf(c, indent + '  ')).join('\n')}\n${indent}</div>`;
}

function cssOf(e: Emitted, into: string[]): void {
  into.push(`.${e.className} {\n${e.decls.map(([k, v]) => `  ${k}: ${v};`).join('\n')}\n}`);
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

function jsxOf(e: Emitted, indent: string): string {
  const cls = tailwindClasses(e.decls).join(' ');
  const attrs = `className=${JSON.stringify(cls)} data-figma-id=${JSON.stringify(e.node.id)}`;
  if (e.tag === 'img')
    return `${indent}<img ${attrs} src=${JSON.stringify(e.src)} alt=${JSON.stringify(e.node.name)} />`;
  if (e.tag === 'p') return `${indent}<p ${attrs}>{${JSON.stringify(e.node.text ?? '')}}</p>`;
  if (!e.children.length) return `${indent}<div ${attrs} />`;
  return `${indent}<div ${attrs}>\n${e.children.map((c) => jsxOf(c, indent + '  ')).join('\n')}\n${indent}</div>`;
}

export function generateCode(
  design: SimplifiedDesign,
  opts: { framework: 'html' | 'react' | 'both'; assetDir?: string },
): GeneratedCode {
  const root = design.nodes[0];
  if (!root) throw new Error('generateCode: empty design');
  const b = new Builder(design, opts.assetDir ?? 'assets');
  const tree = b.emit({ ...root, visible: undefined }, undefined)!;
  const tokensCss = b.tokensCss();
  const componentName = pascal(root.name);
  const out: GeneratedCode = { tokensCss, assets: [...b.assets.values()], componentName };
  if (opts.framework !== 'react') {
    const rules: string[] = [];
    cssOf(tree, rules);
    const css = `${tokensCss}*, *::before, *::after { box-sizing: border-box; margin: 0; padding: 0; }\n${rules.join('\n')}\n`;
    out.css = css;
    out.html = `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>${escapeHtml(root.name)}</title>\n<style>\n${css}</style>\n</head>\n<body>\n${htmlOf(tree, '')}\n</body>\n</html>\n`;
  }
  if (opts.framework !== 'html') {
    out.react = `// Generated from Figma node ${root.id} ("${root.name.replace(/\n/g, ' ')}"). Tokens: include tokensCss once (for example in globals.css).\nexport function ${componentName}() {\n  return (\n${jsxOf(tree, '    ')}\n  );\n}\n`;
  }
  return out;
}
