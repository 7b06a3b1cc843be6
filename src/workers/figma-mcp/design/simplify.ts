/**
 * Figma's node JSON is built for a renderer: megabytes of transforms, override tables and defaults. An LLM
 * (and the code generator) needs the design: boxes, auto layout in CSS flex terms, text and its style,
 * fills, strokes, effects, radii, and what is a component. This turns raw nodes into that compact tree and
 * hoists every style value used more than once (or named by a Figma style) into a shared `styles` table
 * the nodes refer to by name, which is where most of the size goes.
 */
import type {
  Node,
  Rectangle,
  Style,
  Component,
  ComponentSet,
  ComponentPropertyDefinition,
  FrameNode,
} from '@figma/rest-api-spec';

/** The layout and paint traits read here, whichever node type carries them. */
export type LooseTraits = Partial<
  Pick<
    FrameNode,
    | 'absoluteBoundingBox'
    | 'layoutSizingHorizontal'
    | 'layoutSizingVertical'
    | 'layoutPositioning'
    | 'layoutMode'
    | 'itemSpacing'
    | 'paddingTop'
    | 'paddingRight'
    | 'paddingBottom'
    | 'paddingLeft'
    | 'primaryAxisAlignItems'
    | 'counterAxisAlignItems'
    | 'layoutWrap'
    | 'counterAxisSpacing'
    | 'fills'
    | 'strokes'
    | 'strokeWeight'
    | 'strokeAlign'
    | 'effects'
    | 'rectangleCornerRadii'
    | 'cornerRadius'
    | 'opacity'
    | 'clipsContent'
    | 'styles'
    | 'children'
    | 'boundVariables'
    | 'componentPropertyReferences'
  >
>;

export function traits(node: Node): LooseTraits {
  return node as unknown as LooseTraits;
}
import {
  colorCss,
  effectCss,
  paintCss,
  round,
  textStyleCss,
  type SimpleFill,
  type SimpleTextStyle,
} from './css-values.js';
import { textDetails, type SimpleLine, type SimpleLink, type SimpleTextRun } from './text-runs.js';

export interface SimpleLayout {
  display: 'flex';
  flexDirection: 'row' | 'column';
  gap?: number;
  padding?: string;
  justifyContent?: string;
  alignItems?: string;
  flexWrap?: 'wrap';
  rowGap?: number;
}

export interface SimpleStroke {
  color: SimpleFill;
  weight: number;
  align: 'inside' | 'outside' | 'center';
}

export interface SimpleNode {
  id: string;
  name: string;
  type: string;
  /** x, y relative to the parent (absolute for a root), width, height. */
  box: { x: number; y: number; w: number; h: number };
  visible?: false;
  /** How this node sizes inside its parent's auto layout. */
  sizing?: { w: 'fixed' | 'hug' | 'fill'; h: 'fixed' | 'hug' | 'fill' };
  /** Taken out of the parent's flow (absolute position, or a parent without auto layout). */
  absolute?: true;
  /** Auto layout as CSS flex, or a style name. */
  layout?: SimpleLayout | string;
  fills?: SimpleFill[] | string;
  strokes?: SimpleStroke | string;
  effects?: { boxShadow?: string; filter?: string; backdropFilter?: string } | string;
  radius?: number | [number, number, number, number];
  opacity?: number;
  clip?: true;
  text?: string;
  textStyle?: SimpleTextStyle | string;
  /** Ranges of `text` styled unlike the base `textStyle` (only what differs), `end` exclusive. */
  runs?: SimpleTextRun[];
  /** Per line of `text` (split at newlines), when any line is a list item. */
  lines?: SimpleLine[];
  /** A hyperlink on the whole text. */
  link?: SimpleLink;
  component?: SimpleComponent;
  /** Fields driven by a component property, by property name (`{ visible: 'Has icon' }`). */
  propertyRefs?: Record<string, string>;
  /** Vectors and boolean shapes: best exported as SVG, not rebuilt in CSS. */
  vector?: true;
  children?: SimpleNode[];
  /** Set when `depth` cut the subtree here: how many children were left out. */
  omittedChildren?: number;
}

export interface SimplePropertyDef {
  type: ComponentPropertyDefinition['type'];
  default: string | boolean;
  /** The values a VARIANT property can take. */
  options?: string[];
}

export interface SimpleComponent {
  id: string;
  name?: string;
  set?: string;
  /** An instance's property values, by property name. */
  properties?: Record<string, string | boolean>;
  /** A component set's (or component's) properties: variant axes with their options, booleans, texts, instance swaps. */
  definitions?: Record<string, SimplePropertyDef>;
  /** A variant's values on its set's axes (`{ Type: 'Primary', State: 'Hover' }`). */
  variant?: Record<string, string>;
}

export interface SimplifyOptions {
  /** Keep layers with `visible: false` (marked so) instead of dropping them with their subtree. */
  includeHidden?: boolean;
}

export type StyleKind = 'fill' | 'stroke' | 'effect' | 'text' | 'layout';

export interface SimplifyContext {
  styles?: Record<string, Style>;
  components?: Record<string, Component>;
  componentSets?: Record<string, ComponentSet>;
}

export interface SimplifiedDesign {
  nodes: SimpleNode[];
  /** Shared values by name; nodes refer to them as `"$name"`. */
  styles: Record<string, unknown>;
  /** Hidden layers left out (each counted with its subtree's root only). */
  hiddenOmitted: number;
}

const STYLE_KEY_FOR: Record<StyleKind, string> = {
  fill: 'fill',
  stroke: 'stroke',
  effect: 'effect',
  text: 'text',
  layout: '',
};

/**
 * Shared values. A Figma style's name is attached only to the nodes that reference that style: the key is
 * the style id plus the value, so a node that merely has the same colour as "Brand/Primary" shares an
 * unnamed entry with its look-alikes instead of claiming the style.
 */
class StyleRegistry {
  private readonly entries = new Map<
    string,
    { kind: StyleKind; value: unknown; count: number; named?: string }
  >();

  register(kind: StyleKind, value: unknown, style: { id: string; name: string } | undefined): string {
    const key = `${kind}|${style?.id ?? ''}|${JSON.stringify(value)}`;
    const e = this.entries.get(key);
    if (e) e.count++;
    else this.entries.set(key, { kind, value, count: 1, ...(style ? { named: style.name } : {}) });
    return key;
  }

  value(key: string): unknown {
    return this.entries.get(key)?.value;
  }

  /** Names for the values worth sharing; single-use unnamed values stay inline. */
  resolve(): Map<string, { name: string; value: unknown } | undefined> {
    const out = new Map<string, { name: string; value: unknown } | undefined>();
    const used = new Set<string>();
    const counters: Record<string, number> = {};
    for (const [key, e] of this.entries) {
      if (e.count < 2 && !e.named) {
        out.set(key, undefined);
        continue;
      }
      let name = e.named
        ? `${e.kind}-${slug(e.named)}`
        : `${e.kind}-${(counters[e.kind] = (counters[e.kind] ?? 0) + 1)}`;
      while (used.has(name)) name = `${name}-${(counters[name] = (counters[name] ?? 1) + 1)}`;
      used.add(name);
      out.set(key, { name, value: e.value });
    }
    return out;
  }
}

export function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'x'
  );
}

interface Pending {
  node: SimpleNode;
  refs: { field: 'layout' | 'fills' | 'strokes' | 'effects' | 'textStyle'; key: string }[];
}

/** A component property key without Figma's `#<id>` suffix (variant axes have none). */
export function propertyName(key: string): string {
  const hash = key.lastIndexOf('#');
  return hash > 0 ? key.slice(0, hash) : key;
}

function definitionsOf(
  defs: Record<string, ComponentPropertyDefinition> | undefined,
): Record<string, SimplePropertyDef> | undefined {
  if (!defs || !Object.keys(defs).length) return undefined;
  return Object.fromEntries(
    Object.entries(defs).map(([k, d]) => [
      propertyName(k),
      { type: d.type, default: d.defaultValue, ...(d.variantOptions ? { options: d.variantOptions } : {}) },
    ]),
  );
}

/** `Type=Primary, State=Hover` → `{ Type: 'Primary', State: 'Hover' }` (how Figma names variants). */
export function variantValues(name: string): Record<string, string> | undefined {
  const pairs = name.split(',').map((p) => p.split('='));
  if (!pairs.every((p) => p.length === 2 && p[0]!.trim() && p[1]!.trim())) return undefined;
  return Object.fromEntries(pairs.map(([k, v]) => [k!.trim(), v!.trim()]));
}

/** Simplifies each root (a raw node from the files or nodes endpoint) into one shared-styles design. */
export function simplify(
  roots: Node[],
  ctx: SimplifyContext = {},
  options: SimplifyOptions = {},
): SimplifiedDesign {
  const registry = new StyleRegistry();
  const pending: Pending[] = [];
  let hiddenOmitted = 0;
  const styleOf = (node: Node, kind: StyleKind): { id: string; name: string } | undefined => {
    const k = STYLE_KEY_FOR[kind];
    const st = traits(node).styles;
    if (!k || !st) return undefined;
    const id = st[k] ?? (kind === 'fill' ? st.fills : undefined);
    const name = id ? ctx.styles?.[id]?.name : undefined;
    return id && name ? { id, name } : undefined;
  };

  const visit = (
    raw: Node,
    parentBox: Rectangle | undefined,
    parentAutoLayout: boolean,
    isRoot = false,
    /** The component set this node is a direct child of (a variant), whatever the components map says. */
    parentSet?: string,
  ): SimpleNode | undefined => {
    // A hidden layer is not part of what anyone sees; its text must not reach a reader unless asked for.
    // A root asked for by id is kept (marked) so the answer is not silently empty.
    if (raw.visible === false && !options.includeHidden && !isRoot) {
      hiddenOmitted++;
      return undefined;
    }
    const abs = traits(raw).absoluteBoundingBox ?? null;
    const box = abs
      ? {
          x: round(abs.x - (parentBox?.x ?? 0)),
          y: round(abs.y - (parentBox?.y ?? 0)),
          w: round(abs.width),
          h: round(abs.height),
        }
      : { x: 0, y: 0, w: 0, h: 0 };
    const out: SimpleNode = { id: raw.id, name: raw.name, type: raw.type, box };
    const p: Pending = { node: out, refs: [] };
    pending.push(p);
    if (raw.visible === false) out.visible = false;
    const n = traits(raw);

    if (n.layoutSizingHorizontal && n.layoutSizingVertical && parentAutoLayout) {
      out.sizing = { w: lower(n.layoutSizingHorizontal), h: lower(n.layoutSizingVertical) };
    }
    if (parentBox && (!parentAutoLayout || n.layoutPositioning === 'ABSOLUTE')) out.absolute = true;

    const hasAutoLayout = n.layoutMode === 'HORIZONTAL' || n.layoutMode === 'VERTICAL';
    if (hasAutoLayout) {
      const layout: SimpleLayout = {
        display: 'flex',
        flexDirection: n.layoutMode === 'HORIZONTAL' ? 'row' : 'column',
      };
      if (n.itemSpacing) layout.gap = round(n.itemSpacing);
      const pad = [n.paddingTop ?? 0, n.paddingRight ?? 0, n.paddingBottom ?? 0, n.paddingLeft ?? 0].map(
        (v) => round(v),
      );
      if (pad.some((v) => v !== 0)) layout.padding = pad.map((v) => `${v}px`).join(' ');
      const justify = { MIN: undefined, CENTER: 'center', MAX: 'flex-end', SPACE_BETWEEN: 'space-between' }[
        n.primaryAxisAlignItems ?? 'MIN'
      ];
      if (justify) layout.justifyContent = justify;
      const align = { MIN: undefined, CENTER: 'center', MAX: 'flex-end', BASELINE: 'baseline' }[
        n.counterAxisAlignItems ?? 'MIN'
      ];
      if (align) layout.alignItems = align;
      if (n.layoutWrap === 'WRAP') {
        layout.flexWrap = 'wrap';
        if (n.counterAxisSpacing) layout.rowGap = round(n.counterAxisSpacing);
      }
      p.refs.push({ field: 'layout', key: registry.register('layout', layout, undefined) });
    }

    if (Array.isArray(n.fills) && raw.type !== 'TEXT') {
      const fills = n.fills.map(paintCss).filter((f): f is SimpleFill => f !== undefined);
      if (fills.length)
        p.refs.push({ field: 'fills', key: registry.register('fill', fills, styleOf(raw, 'fill')) });
    }
    if (Array.isArray(n.strokes) && n.strokes.length && (n.strokeWeight ?? 1) > 0) {
      const color = n.strokes.map(paintCss).find((f): f is SimpleFill => f !== undefined);
      if (color) {
        const align = (n.strokeAlign ?? 'INSIDE').toLowerCase() as SimpleStroke['align'];
        p.refs.push({
          field: 'strokes',
          key: registry.register(
            'stroke',
            { color, weight: round(n.strokeWeight ?? 1), align },
            styleOf(raw, 'stroke'),
          ),
        });
      }
    }
    if (Array.isArray(n.effects) && n.effects.length) {
      const shadows: string[] = [];
      const fx: { boxShadow?: string; filter?: string; backdropFilter?: string } = {};
      for (const e of n.effects) {
        const c = effectCss(e);
        if (c?.kind === 'shadow') shadows.push(c.css);
        else if (c?.kind === 'filter') fx.filter = c.css;
        else if (c?.kind === 'backdrop') fx.backdropFilter = c.css;
      }
      if (shadows.length) fx.boxShadow = shadows.join(', ');
      if (Object.keys(fx).length)
        p.refs.push({ field: 'effects', key: registry.register('effect', fx, styleOf(raw, 'effect')) });
    }
    if (Array.isArray(n.rectangleCornerRadii) && n.rectangleCornerRadii.length === 4) {
      const [a, b, c, d] = n.rectangleCornerRadii.map((v) => round(v)) as [number, number, number, number];
      out.radius = a === b && b === c && c === d ? a : [a, b, c, d];
    } else if (n.cornerRadius) out.radius = round(n.cornerRadius);
    if (n.opacity !== undefined && n.opacity < 1) out.opacity = round(n.opacity, 3);
    if (n.clipsContent) out.clip = true;

    if (raw.type === 'TEXT') {
      out.text = raw.characters;
      const style = textStyleCss(raw.style);
      const color = raw.fills.map(paintCss).find((f): f is string => typeof f === 'string');
      p.refs.push({ field: 'textStyle', key: registry.register('text', style, styleOf(raw, 'text')) });
      if (color)
        p.refs.push({ field: 'fills', key: registry.register('fill', [color], styleOf(raw, 'fill')) });
      const details = textDetails(raw, style, color);
      if (details.runs.length) out.runs = details.runs;
      if (details.lines) out.lines = details.lines;
      if (details.link) out.link = details.link;
    }
    if (n.componentPropertyReferences && Object.keys(n.componentPropertyReferences).length)
      out.propertyRefs = Object.fromEntries(
        Object.entries(n.componentPropertyReferences).map(([field, key]) => [field, propertyName(key)]),
      );
    const t = raw.type;
    if (
      t === 'VECTOR' ||
      t === 'BOOLEAN_OPERATION' ||
      t === 'STAR' ||
      t === 'REGULAR_POLYGON' ||
      t === 'LINE'
    )
      out.vector = true;
    if (raw.type === 'INSTANCE') {
      const comp = ctx.components?.[raw.componentId];
      const set = comp?.componentSetId ? ctx.componentSets?.[comp.componentSetId]?.name : undefined;
      const properties = raw.componentProperties
        ? Object.fromEntries(
            Object.entries(raw.componentProperties).map(([k, v]) => [propertyName(k), v.value]),
          )
        : undefined;
      out.component = {
        id: raw.componentId,
        ...(comp ? { name: comp.name } : {}),
        ...(set ? { set } : {}),
        ...(properties ? { properties } : {}),
      };
    } else if (raw.type === 'COMPONENT') {
      const comp = ctx.components?.[raw.id];
      const set =
        parentSet ?? (comp?.componentSetId ? ctx.componentSets?.[comp.componentSetId]?.name : undefined);
      const variant = set ? variantValues(raw.name) : undefined;
      const definitions = definitionsOf(raw.componentPropertyDefinitions);
      out.component = {
        id: raw.id,
        name: raw.name,
        ...(set ? { set } : {}),
        ...(variant ? { variant } : {}),
        ...(definitions ? { definitions } : {}),
      };
    } else if (raw.type === 'COMPONENT_SET') {
      const definitions = definitionsOf(raw.componentPropertyDefinitions);
      out.component = { id: raw.id, name: raw.name, ...(definitions ? { definitions } : {}) };
    }

    if (Array.isArray(n.children)) {
      const kids = (n.children as Node[])
        .map((c) =>
          visit(
            c,
            abs ?? parentBox,
            hasAutoLayout,
            false,
            raw.type === 'COMPONENT_SET' ? raw.name : undefined,
          ),
        )
        .filter((c): c is SimpleNode => c !== undefined);
      if (kids.length) out.children = kids;
    }
    return out;
  };

  const nodes = roots
    .map((r) => visit(r, undefined, false, true))
    .filter((r): r is SimpleNode => r !== undefined);
  const names = registry.resolve();
  const styles: Record<string, unknown> = {};
  for (const { node, refs } of pending) {
    for (const ref of refs) {
      const named = names.get(ref.key);
      const value = named ? `$${named.name}` : registry.value(ref.key);
      if (named) styles[named.name] = named.value;
      (node as unknown as Record<string, unknown>)[ref.field] = value;
    }
  }
  return { nodes, styles, hiddenOmitted };
}

function lower(v: 'FIXED' | 'HUG' | 'FILL'): 'fixed' | 'hug' | 'fill' {
  return v.toLowerCase() as 'fixed' | 'hug' | 'fill';
}

/** Resolves a `"$name"` reference against the styles table (values pass through). */
export function deref<T>(value: T | string | undefined, styles: Record<string, unknown>): T | undefined {
  if (typeof value === 'string' && value.startsWith('$')) return styles[value.slice(1)] as T | undefined;
  return value as T | undefined;
}

export { colorCss };
