/**
 * What a text node's REST model carries beyond its base style: per-character style overrides
 * (`characterStyleOverrides` indexing `styleOverrideTable`), per-line list types and indentation
 * (`lineTypes`, `lineIndentations`) and hyperlinks. Turned into style runs (ranges with only what differs
 * from the base), list lines and links, so a reader sees "20%" in bold red and the generator can emit it.
 *
 * Indexes are UTF-16 code units, as in Figma's own plugin API and JavaScript strings.
 */
import type { Hyperlink, TextNode, TypeStyle } from '@figma/rest-api-spec';
import { overrideCss, paintCss, type SimpleTextStyle } from './css-values.js';

export type SimpleLink = { url: string } | { nodeId: string };

export interface SimpleTextRun {
  start: number;
  end: number;
  style: SimpleTextStyle & { color?: string; link?: SimpleLink };
}

export interface SimpleLine {
  type: 'none' | 'ordered' | 'unordered';
  /** Nesting level as Figma counts it (list items start at 1). */
  indent: number;
}

export function linkOf(h: Hyperlink | undefined): SimpleLink | undefined {
  if (!h) return undefined;
  if (h.type === 'URL' && h.url) return { url: h.url };
  if (h.type === 'NODE' && h.nodeID) return { nodeId: h.nodeID };
  return undefined;
}

function runStyle(
  o: TypeStyle,
  base: SimpleTextStyle,
  baseColor: string | undefined,
): SimpleTextRun['style'] | undefined {
  const style: SimpleTextRun['style'] = overrideCss(o, base);
  const color = o.fills?.map(paintCss).find((f): f is string => typeof f === 'string');
  if (color && color !== baseColor) style.color = color;
  const link = linkOf(o.hyperlink);
  if (link) style.link = link;
  return Object.keys(style).length ? style : undefined;
}

export function textDetails(
  node: TextNode,
  base: SimpleTextStyle,
  baseColor: string | undefined,
): { runs: SimpleTextRun[]; lines?: SimpleLine[]; link?: SimpleLink } {
  const chars = node.characters;
  const overrides = node.characterStyleOverrides ?? [];
  const table = node.styleOverrideTable ?? {};
  const styles = new Map<number, string | undefined>();
  const styleFor = (id: number): string | undefined => {
    if (!styles.has(id)) {
      const o = table[String(id)];
      const s = o ? runStyle(o, base, baseColor) : undefined;
      styles.set(id, s ? JSON.stringify(s) : undefined);
    }
    return styles.get(id);
  };
  const runs: SimpleTextRun[] = [];
  const end = Math.min(overrides.length, chars.length);
  let i = 0;
  while (i < end) {
    const key = overrides[i] ? styleFor(overrides[i]!) : undefined;
    let j = i + 1;
    // Neighbouring ids that style the same way (Figma splits runs on fields we do not render) merge.
    while (j < end && (overrides[j] ? styleFor(overrides[j]!) : undefined) === key) j++;
    if (key) runs.push({ start: i, end: j, style: JSON.parse(key) as SimpleTextRun['style'] });
    i = j;
  }
  const types = node.lineTypes ?? [];
  const indents = node.lineIndentations ?? [];
  const lines = types.some((t) => t !== 'NONE')
    ? types.map((t, k) => ({
        type:
          t === 'ORDERED'
            ? ('ordered' as const)
            : t === 'UNORDERED'
              ? ('unordered' as const)
              : ('none' as const),
        indent: indents[k] ?? 0,
      }))
    : undefined;
  const link = linkOf(node.style.hyperlink);
  return { runs, ...(lines ? { lines } : {}), ...(link ? { link } : {}) };
}
