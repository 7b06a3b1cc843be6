/**
 * Design analysis over raw nodes: the token inventory (colours — solid fills, strokes, gradient stops and
 * the colours of styled text runs —, typography including each text run's override style, gradients,
 * spacing, radii, shadows, with the named styles and bound variables behind them), component and instance
 * usage, WCAG contrast of text (and of each differently coloured run) over the fill behind it,
 * inconsistencies (off-grid spacing, near-duplicate font sizes and radii), and detached styles (a raw value
 * equal to a named style's value without the style applied). Hidden layers and their subtrees count for
 * nothing unless `includeHidden`: nobody sees them.
 */
import type {
  Component,
  ComponentSet,
  LocalVariable,
  LocalVariableCollection,
  Node,
  Paint,
  RGBA,
  Style,
  TypeStyle,
} from '@figma/rest-api-spec';
import { blend, colorCss, contrastRatio, effectCss, paintCss, round } from './css-values.js';
import { traits } from './simplify.js';

export interface AnalysisInput {
  roots: Node[];
  styles: Record<string, Style>;
  components: Record<string, Component>;
  componentSets: Record<string, ComponentSet>;
  variables:
    | {
        available: true;
        variables: Record<string, LocalVariable>;
        collections: Record<string, LocalVariableCollection>;
      }
    | { available: false; reason: string };
  /** Spacing grid the analysis expects (px). */
  grid?: number;
  /** Count hidden layers too. */
  includeHidden?: boolean;
}

interface Counted {
  value: string | number;
  count: number;
  styles: string[];
  variables: string[];
  sampleNodes: string[];
}

class Tally {
  private readonly map = new Map<string, Counted>();
  add(value: string | number, nodeId: string, style?: string, variable?: string): void {
    const key = String(value);
    let e = this.map.get(key);
    if (!e) this.map.set(key, (e = { value, count: 0, styles: [], variables: [], sampleNodes: [] }));
    e.count++;
    if (style && !e.styles.includes(style)) e.styles.push(style);
    if (variable && !e.variables.includes(variable)) e.variables.push(variable);
    if (e.sampleNodes.length < 5) e.sampleNodes.push(nodeId);
  }
  list(): Counted[] {
    return [...this.map.values()].sort(
      (a, b) => b.count - a.count || String(a.value).localeCompare(String(b.value)),
    );
  }
}

export interface ContrastIssue {
  nodeId: string;
  name: string;
  text: string;
  foreground: string;
  background: string;
  ratio: number;
  largeText: boolean;
  required: number;
}

export function analyzeDesign(input: AnalysisInput) {
  const grid = input.grid ?? 4;
  const colors = new Tally();
  const typography = new Tally();
  const spacing = new Tally();
  const radii = new Tally();
  const shadows = new Tally();
  const gradients = new Tally();
  const instances = new Map<string, { count: number; sampleNodes: string[] }>();
  const definedComponents: { id: string; name: string; set?: string }[] = [];
  const contrastIssues: ContrastIssue[] = [];
  let contrastChecked = 0;
  let contrastUnknown = 0;
  const boundVariableUses = new Map<string, number>();
  const offGrid: { nodeId: string; name: string; property: string; value: number }[] = [];
  // Named style values learned from the nodes that apply them, to spot detached copies later.
  const styleValues = new Map<string, { styleId: string; kind: string }>();
  const rawUses: { nodeId: string; name: string; kind: string; key: string; styled: boolean }[] = [];
  const styleName = (id: string | undefined) => (id ? (input.styles[id]?.name ?? id) : undefined);
  const varName = (id: string | undefined) =>
    id ? (input.variables.available ? (input.variables.variables[id]?.name ?? id) : id) : undefined;

  const solidOf = (
    paints: Paint[] | undefined,
  ): { color: RGBA; opacity: number; variable?: string } | undefined => {
    for (const p of [...(paints ?? [])].reverse()) {
      if (p.visible === false) continue;
      if (p.type === 'SOLID')
        return {
          color: p.color,
          opacity: p.opacity ?? 1,
          ...(p.boundVariables?.color ? { variable: p.boundVariables.color.id } : {}),
        };
      return undefined;
    }
    return undefined;
  };

  /** Every colour a paint list shows: solid fills and each gradient stop; gradients also as a whole. */
  const addPaintColors = (paints: Paint[] | undefined, nodeId: string, style?: string) => {
    for (const p of paints ?? []) {
      if (p.visible === false) continue;
      if (p.type === 'SOLID') continue; // counted by the caller, with its variable
      if (
        p.type === 'GRADIENT_LINEAR' ||
        p.type === 'GRADIENT_RADIAL' ||
        p.type === 'GRADIENT_ANGULAR' ||
        p.type === 'GRADIENT_DIAMOND'
      ) {
        const css = paintCss(p);
        if (typeof css === 'string') gradients.add(css, nodeId, style);
        for (const stop of p.gradientStops)
          colors.add(
            colorCss(stop.color, p.opacity ?? 1),
            nodeId,
            style,
            varName(stop.boundVariables?.color?.id),
          );
      }
    }
  };

  const checkContrast = (
    n: Node & { characters: string },
    text: string,
    s: TypeStyle,
    fg: { color: RGBA; opacity: number },
    bg: { r: number; g: number; b: number },
  ) => {
    contrastChecked++;
    const fgColor = blend(fg.color, fg.opacity, bg);
    const ratio = round(contrastRatio(fgColor, bg), 2);
    const size = s.fontSize ?? 16;
    const largeText = size >= 24 || (size >= 18.66 && (s.fontWeight ?? 400) >= 700);
    const required = largeText ? 3 : 4.5;
    if (ratio < required) {
      contrastIssues.push({
        nodeId: n.id,
        name: n.name,
        text: text.slice(0, 60),
        foreground: colorCss(fg.color, fg.opacity),
        background: colorCss({ ...bg, a: 1 }),
        ratio,
        largeText,
        required,
      });
    }
  };

  const walk = (n: Node, bgStack: ({ r: number; g: number; b: number } | null)[], hidden: boolean) => {
    const t = traits(n);
    const isHidden = hidden || n.visible === false;
    // Nobody sees a hidden layer: its colours, instances, spacing and text are not part of the design.
    if (isHidden && !input.includeHidden) return;
    if (t.boundVariables) {
      for (const v of Object.values(t.boundVariables)) {
        const aliases = Array.isArray(v)
          ? v
          : v && typeof v === 'object' && 'id' in v
            ? [v]
            : Object.values(v ?? {});
        for (const a of aliases as { id?: string }[])
          if (a?.id) boundVariableUses.set(a.id, (boundVariableUses.get(a.id) ?? 0) + 1);
      }
    }
    const fillStyle = t.styles?.fill ?? t.styles?.fills;
    const fill = solidOf(t.fills);
    addPaintColors(t.fills, n.id, styleName(fillStyle));
    if (fill) {
      const css = colorCss(fill.color, fill.opacity);
      colors.add(css, n.id, styleName(fillStyle), varName(fill.variable));
      const key = `fill:${css}`;
      if (fillStyle) styleValues.set(key, { styleId: fillStyle, kind: 'fill' });
      rawUses.push({ nodeId: n.id, name: n.name, kind: 'fill', key, styled: !!fillStyle || !!fill.variable });
    }
    const stroke = solidOf(t.strokes);
    if (stroke)
      colors.add(
        colorCss(stroke.color, stroke.opacity),
        n.id,
        styleName(t.styles?.stroke),
        varName(stroke.variable),
      );
    if (t.layoutMode === 'HORIZONTAL' || t.layoutMode === 'VERTICAL') {
      const props: [string, number | undefined][] = [
        ['itemSpacing', t.itemSpacing],
        ['paddingTop', t.paddingTop],
        ['paddingRight', t.paddingRight],
        ['paddingBottom', t.paddingBottom],
        ['paddingLeft', t.paddingLeft],
        ['counterAxisSpacing', t.counterAxisSpacing],
      ];
      for (const [prop, v] of props) {
        if (!v) continue;
        spacing.add(
          round(v),
          n.id,
          undefined,
          varName((t.boundVariables as Record<string, { id?: string }> | undefined)?.[prop]?.id),
        );
        if (v % grid !== 0) offGrid.push({ nodeId: n.id, name: n.name, property: prop, value: round(v) });
      }
    }
    if (t.cornerRadius) radii.add(round(t.cornerRadius), n.id);
    for (const e of t.effects ?? []) {
      const c = effectCss(e);
      if (c?.kind === 'shadow') {
        shadows.add(c.css, n.id, styleName(t.styles?.effect));
        const key = `effect:${c.css}`;
        if (t.styles?.effect) styleValues.set(key, { styleId: t.styles.effect, kind: 'effect' });
        rawUses.push({ nodeId: n.id, name: n.name, kind: 'effect', key, styled: !!t.styles?.effect });
      }
    }
    if (n.type === 'INSTANCE') {
      const e = instances.get(n.componentId) ?? { count: 0, sampleNodes: [] };
      e.count++;
      if (e.sampleNodes.length < 5) e.sampleNodes.push(n.id);
      instances.set(n.componentId, e);
    }
    if (n.type === 'COMPONENT') {
      const setId = input.components[n.id]?.componentSetId;
      definedComponents.push({
        id: n.id,
        name: n.name,
        ...(setId && input.componentSets[setId] ? { set: input.componentSets[setId].name } : {}),
      });
    }
    if (n.type === 'TEXT') {
      const s = n.style;
      const typo = `${s.fontFamily ?? '?'} ${s.fontWeight ?? 400} ${round(s.fontSize ?? 0)}/${round(s.lineHeightPx ?? 0)}`;
      typography.add(typo, n.id, styleName(t.styles?.text));
      const key = `text:${typo}`;
      if (t.styles?.text) styleValues.set(key, { styleId: t.styles.text, kind: 'text' });
      rawUses.push({ nodeId: n.id, name: n.name, kind: 'text', key, styled: !!t.styles?.text });
      const fg = solidOf(n.fills);
      const bg = [...bgStack].reverse().find((b) => b !== undefined);
      if (fg && bg) checkContrast(n, n.characters, s, fg, bg);
      else contrastUnknown++;
      // Style runs: each override style actually used is a type style and maybe a colour of its own.
      const used = new Map<number, { start: number; end: number }>();
      n.characterStyleOverrides.forEach((id, i) => {
        if (id && !used.has(id)) used.set(id, { start: i, end: i + 1 });
        else if (id) used.get(id)!.end = i + 1;
      });
      for (const [id, range] of used) {
        const o = n.styleOverrideTable[String(id)];
        if (!o) continue;
        const merged: TypeStyle = { ...s, ...o };
        const runTypo = `${merged.fontFamily ?? '?'} ${merged.fontWeight ?? 400} ${round(merged.fontSize ?? 0)}/${round(merged.lineHeightPx ?? 0)}`;
        if (runTypo !== typo) typography.add(runTypo, n.id);
        const runFg = o.fills ? solidOf(o.fills) : undefined;
        if (runFg) {
          colors.add(colorCss(runFg.color, runFg.opacity), n.id, undefined, varName(runFg.variable));
          if (bg) checkContrast(n, n.characters.slice(range.start, range.end), merged, runFg, bg);
        }
        addPaintColors(o.fills, n.id);
      }
    }
    // What paints behind the children: an opaque solid fill, or "unknown" (image, gradient) which stops the search.
    let behind: { r: number; g: number; b: number } | null | undefined;
    const topPaint = [...(t.fills ?? [])].reverse().find((p) => p.visible !== false);
    if (n.type !== 'TEXT' && topPaint) {
      if (topPaint.type === 'SOLID') {
        const under = [...bgStack].reverse().find((b) => b !== undefined) ?? { r: 1, g: 1, b: 1 };
        behind = under ? blend(topPaint.color, topPaint.opacity ?? 1, under) : null;
      } else behind = null;
    }
    if (Array.isArray(t.children)) {
      const next = behind === undefined ? bgStack : [...bgStack, behind];
      for (const c of t.children as Node[]) walk(c, next, isHidden);
    }
  };
  for (const r of input.roots) walk(r, [], false);

  const detached = rawUses
    .filter((u) => !u.styled && styleValues.has(u.key))
    .map((u) => {
      const s = styleValues.get(u.key)!;
      return {
        nodeId: u.nodeId,
        name: u.name,
        kind: u.kind,
        value: u.key.slice(u.key.indexOf(':') + 1),
        matchesStyle: styleName(s.styleId)!,
      };
    });

  const nearDuplicates = (list: Counted[], tolerance: number) => {
    const out: { value: number; count: number; near: number; nearCount: number }[] = [];
    for (const a of list) {
      for (const b of list) {
        const av = Number(a.value);
        const bv = Number(b.value);
        if (av !== bv && Math.abs(av - bv) <= tolerance && a.count < b.count)
          out.push({ value: av, count: a.count, near: bv, nearCount: b.count });
      }
    }
    return out;
  };
  const fontSizes = new Tally();
  for (const t of typography.list()) {
    const size = Number(/ (\d+(?:\.\d+)?)\//.exec(String(t.value))?.[1] ?? 0);
    for (let i = 0; i < t.count; i++) fontSizes.add(size, t.sampleNodes[0] ?? '');
  }

  const componentUsage = [...instances.entries()]
    .map(([id, e]) => {
      const c = input.components[id];
      const set = c?.componentSetId ? input.componentSets[c.componentSetId]?.name : undefined;
      return {
        componentId: id,
        name: c?.name ?? null,
        set: set ?? null,
        remote: c?.remote ?? null,
        instances: e.count,
        sampleNodes: e.sampleNodes,
      };
    })
    .sort((a, b) => b.instances - a.instances);

  const variables = input.variables.available
    ? {
        available: true as const,
        collections: Object.values(input.variables.collections).map((c) => ({
          id: c.id,
          name: c.name,
          modes: c.modes.map((m) => m.name),
          variables: c.variableIds.length,
        })),
        variables: Object.values(input.variables.variables).map((v) => {
          const coll = input.variables.available
            ? input.variables.collections[v.variableCollectionId]
            : undefined;
          const raw = coll ? v.valuesByMode[coll.defaultModeId] : undefined;
          const value =
            raw && typeof raw === 'object' && 'r' in raw
              ? colorCss(raw)
              : raw && typeof raw === 'object'
                ? 'alias'
                : raw;
          return {
            id: v.id,
            name: v.name,
            type: v.resolvedType,
            value: value ?? null,
            uses: boundVariableUses.get(v.id) ?? 0,
          };
        }),
      }
    : { available: false as const, reason: input.variables.reason };

  const report = {
    tokens: {
      colors: colors.list(),
      typography: typography.list(),
      spacing: spacing.list(),
      radii: radii.list(),
      shadows: shadows.list(),
      gradients: gradients.list(),
      namedStyles: Object.entries(input.styles).map(([id, s]) => ({
        id,
        name: s.name,
        type: s.styleType,
        remote: s.remote,
      })),
      boundVariables: [...boundVariableUses.entries()].map(([id, uses]) => ({ id, name: varName(id), uses })),
    },
    variables,
    components: { defined: definedComponents, usage: componentUsage },
    contrast: { checked: contrastChecked, unknownBackground: contrastUnknown, failing: contrastIssues },
    inconsistencies: {
      offGridSpacing: offGrid,
      fontSizes: nearDuplicates(fontSizes.list(), 2),
      radii: nearDuplicates(radii.list(), 2),
    },
    detachedStyles: detached,
  };
  const r = report;
  const lines = [
    `Tokens: ${r.tokens.colors.length} colours, ${r.tokens.typography.length} text styles in use, ${r.tokens.spacing.length} spacing values, ${r.tokens.radii.length} radii, ${r.tokens.shadows.length} shadows, ${r.tokens.gradients.length} gradients; ${r.tokens.namedStyles.length} named styles, ${r.tokens.boundVariables.length} bound variables.`,
    r.variables.available
      ? `Variables: ${r.variables.variables.length} in ${r.variables.collections.length} collection(s).`
      : `Variables: not available (${r.variables.reason}).`,
    `Components: ${r.components.defined.length} defined here, ${r.components.usage.reduce((a, u) => a + u.instances, 0)} instances of ${r.components.usage.length} component(s).`,
    `Contrast: ${r.contrast.failing.length} of ${r.contrast.checked} text layers fail WCAG AA${r.contrast.failing[0] ? ` (worst ${Math.min(...r.contrast.failing.map((f) => f.ratio))}:1)` : ''}.`,
    `Inconsistencies: ${r.inconsistencies.offGridSpacing.length} off-grid spacing values, ${r.inconsistencies.fontSizes.length} near-duplicate font sizes, ${r.inconsistencies.radii.length} near-duplicate radii.`,
    `Detached styles: ${r.detachedStyles.length}.`,
  ];
  return { ...report, summary: lines.join('\n') };
}
