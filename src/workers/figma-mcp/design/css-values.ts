/** Figma paint, effect and type values as CSS values: the vocabulary shared by the simplified tree, the code generator and the analysis. */
import type { Effect, Paint, RGBA, TypeStyle } from '@figma/rest-api-spec';

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function toHex(c: RGBA): string {
  const h = (v: number) =>
    Math.round(Math.min(1, Math.max(0, v)) * 255)
      .toString(16)
      .padStart(2, '0');
  return `#${h(c.r)}${h(c.g)}${h(c.b)}`;
}

export function colorCss(c: RGBA, opacity = 1): string {
  const a = round(c.a * opacity, 3);
  if (a >= 1) return toHex(c);
  const v = (x: number) => Math.round(x * 255);
  return `rgba(${v(c.r)}, ${v(c.g)}, ${v(c.b)}, ${a})`;
}

export type SimpleFill = string | { image: string; scaleMode: string };

export function paintCss(p: Paint): SimpleFill | undefined {
  if (p.visible === false) return undefined;
  const opacity = p.opacity ?? 1;
  switch (p.type) {
    case 'SOLID':
      return colorCss(p.color, opacity);
    case 'GRADIENT_LINEAR': {
      const [a, b] = p.gradientHandlePositions;
      const angle = a && b ? Math.round((Math.atan2(b.y - a.y, b.x - a.x) * 180) / Math.PI + 90) : 180;
      const stops = p.gradientStops
        .map((s) => `${colorCss(s.color, opacity)} ${round(s.position * 100)}%`)
        .join(', ');
      return `linear-gradient(${angle}deg, ${stops})`;
    }
    case 'GRADIENT_RADIAL':
    case 'GRADIENT_DIAMOND':
    case 'GRADIENT_ANGULAR': {
      const stops = p.gradientStops
        .map((s) => `${colorCss(s.color, opacity)} ${round(s.position * 100)}%`)
        .join(', ');
      return p.type === 'GRADIENT_ANGULAR' ? `conic-gradient(${stops})` : `radial-gradient(${stops})`;
    }
    case 'IMAGE':
      return { image: p.imageRef, scaleMode: p.scaleMode };
    default:
      return undefined;
  }
}

export function effectCss(e: Effect): { kind: 'shadow' | 'filter' | 'backdrop'; css: string } | undefined {
  if (!e.visible) return undefined;
  if (e.type === 'DROP_SHADOW' || e.type === 'INNER_SHADOW') {
    const inset = e.type === 'INNER_SHADOW' ? 'inset ' : '';
    return {
      kind: 'shadow',
      css: `${inset}${round(e.offset.x)}px ${round(e.offset.y)}px ${round(e.radius)}px ${round(e.spread ?? 0)}px ${colorCss(e.color)}`,
    };
  }
  if (e.type === 'LAYER_BLUR') return { kind: 'filter', css: `blur(${round(e.radius)}px)` };
  if (e.type === 'BACKGROUND_BLUR') return { kind: 'backdrop', css: `blur(${round(e.radius)}px)` };
  return undefined;
}

export interface SimpleTextStyle {
  fontFamily?: string;
  fontWeight?: number;
  fontSize?: number;
  lineHeight?: string;
  letterSpacing?: string;
  textAlign?: string;
  textTransform?: string;
  textDecoration?: string;
  fontStyle?: string;
  /** `small-caps` / `all-small-caps` (Figma's SMALL_CAPS / SMALL_CAPS_FORCED). */
  fontVariant?: string;
  /** px between paragraphs. */
  paragraphSpacing?: number;
  /** px of first-line indent. */
  paragraphIndent?: number;
  /** px between list items. */
  listSpacing?: number;
  /** Truncated with an ellipsis after this many lines. */
  maxLines?: number;
}

export function textStyleCss(s: TypeStyle): SimpleTextStyle {
  const out: SimpleTextStyle = {};
  if (s.fontFamily) out.fontFamily = s.fontFamily;
  if (s.fontWeight) out.fontWeight = s.fontWeight;
  if (s.fontSize) out.fontSize = s.fontSize;
  if (s.lineHeightUnit === 'FONT_SIZE_%' && s.lineHeightPercentFontSize)
    out.lineHeight = `${round(s.lineHeightPercentFontSize / 100, 3)}`;
  else if (s.lineHeightPx && s.lineHeightUnit !== 'INTRINSIC_%')
    out.lineHeight = `${round(s.lineHeightPx)}px`;
  if (s.letterSpacing) out.letterSpacing = `${round(s.letterSpacing)}px`;
  if (s.textAlignHorizontal && s.textAlignHorizontal !== 'LEFT')
    out.textAlign = s.textAlignHorizontal === 'JUSTIFIED' ? 'justify' : s.textAlignHorizontal.toLowerCase();
  if (s.textCase === 'UPPER') out.textTransform = 'uppercase';
  else if (s.textCase === 'LOWER') out.textTransform = 'lowercase';
  else if (s.textCase === 'TITLE') out.textTransform = 'capitalize';
  else if (s.textCase === 'SMALL_CAPS') out.fontVariant = 'small-caps';
  else if (s.textCase === 'SMALL_CAPS_FORCED') out.fontVariant = 'all-small-caps';
  if (s.textDecoration && s.textDecoration !== 'NONE')
    out.textDecoration = s.textDecoration === 'STRIKETHROUGH' ? 'line-through' : 'underline';
  if (s.italic) out.fontStyle = 'italic';
  if (s.paragraphSpacing) out.paragraphSpacing = round(s.paragraphSpacing);
  if (s.paragraphIndent) out.paragraphIndent = round(s.paragraphIndent);
  if (s.listSpacing) out.listSpacing = round(s.listSpacing);
  if (s.textTruncation === 'ENDING' || s.textAutoResize === 'TRUNCATE') out.maxLines = s.maxLines ?? 1;
  return out;
}

/**
 * The CSS of an override style (from `styleOverrideTable`) relative to the base: only what differs, with
 * explicit resets where the override switches a base decoration, case or italic off.
 */
export function overrideCss(o: TypeStyle, base: SimpleTextStyle): SimpleTextStyle {
  const css = textStyleCss(o);
  // Line height, alignment and paragraph settings belong to paragraphs, not to a run of characters.
  delete css.lineHeight;
  delete css.textAlign;
  delete css.paragraphSpacing;
  delete css.paragraphIndent;
  delete css.listSpacing;
  delete css.maxLines;
  if (o.textDecoration === 'NONE' && base.textDecoration) css.textDecoration = 'none';
  if (o.textCase === 'ORIGINAL' && base.textTransform) css.textTransform = 'none';
  if (o.textCase === 'ORIGINAL' && base.fontVariant) css.fontVariant = 'normal';
  if (o.italic === false && base.fontStyle) css.fontStyle = 'normal';
  if (o.letterSpacing === 0 && base.letterSpacing) css.letterSpacing = '0px';
  const out: SimpleTextStyle = {};
  for (const [k, v] of Object.entries(css) as [keyof SimpleTextStyle, never][])
    if (base[k] !== v) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** WCAG 2.x relative luminance and contrast ratio. */
export function luminance(c: { r: number; g: number; b: number }): number {
  const ch = (v: number) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
}

export function contrastRatio(
  a: { r: number; g: number; b: number },
  b: { r: number; g: number; b: number },
): number {
  const la = luminance(a);
  const lb = luminance(b);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

/** `over` composited on an opaque `under` with alpha. */
export function blend(
  over: RGBA,
  alpha: number,
  under: { r: number; g: number; b: number },
): { r: number; g: number; b: number } {
  const a = over.a * alpha;
  return {
    r: over.r * a + under.r * (1 - a),
    g: over.g * a + under.g * (1 - a),
    b: over.b * a + under.b * (1 - a),
  };
}
