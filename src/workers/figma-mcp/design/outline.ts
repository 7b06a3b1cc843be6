/** The cheap view: one line per node (id, name, type, box), depth-first, for finding the node ids worth a closer look. */
import type { Node } from '@figma/rest-api-spec';
import { round } from './css-values.js';
import { traits } from './simplify.js';

export interface OutlineEntry {
  id: string;
  name: string;
  type: string;
  depth: number;
  box?: [number, number, number, number];
  children?: number;
  hidden?: true;
}

/** The entries, plus how many hidden layers were left out (each with its subtree). */
export function outline(
  roots: Node[],
  maxDepth: number,
  options: { includeHidden?: boolean } = {},
): OutlineEntry[] & { hiddenOmitted: number } {
  const out = Object.assign([] as OutlineEntry[], { hiddenOmitted: 0 });
  const walk = (n: Node, depth: number) => {
    if (n.visible === false && depth > 0 && !options.includeHidden) {
      out.hiddenOmitted++;
      return;
    }
    const t = traits(n);
    const b = t.absoluteBoundingBox;
    const kids = Array.isArray(t.children) ? (t.children as Node[]) : [];
    out.push({
      id: n.id,
      name: n.name,
      type: n.type,
      depth,
      ...(b
        ? {
            box: [round(b.x), round(b.y), round(b.width), round(b.height)] as [
              number,
              number,
              number,
              number,
            ],
          }
        : {}),
      ...(kids.length ? { children: kids.length } : {}),
      ...(n.visible === false ? { hidden: true as const } : {}),
    });
    if (depth < maxDepth) for (const c of kids) walk(c, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  return out;
}
